"""Accounts of the web screens in memory: users and their sessions, as ``storage/sql/accounts.py``.

The twin of the SQL ``SqlAccounts`` (``tests/storage/test_contract_accounts.py`` runs
the same tests on both). Rows live on the shared ``MemoryStore``: ``users`` (User by
user_id) and ``sessions`` (SessionRow by the keyed digest of the cookie). What the
database's constraints refuse is refused here too: a taken e-mail address or user_id,
or an SPE that does not exist, raises ``DuplicateEmail`` on ``create_user`` (the SQL
twin turns every refused constraint of that insert into it); a session whose digest
is taken or whose user does not exist raises ``openplatform.errors.IntegrityError``, as the
SQL twin's driver does.

Atomicity: each method yields to the event loop once (a round trip), then reads and
writes without awaiting, so it is one step as the SQL transaction is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from openplatform.errors import IntegrityError
from openplatform.records import ACTIVE, DISABLED, DuplicateEmail, User, WebSession
from openplatform.storage.memory.store import MemoryStore, SessionRow, page


class MemoryAccounts:
    """Implements ``services.stores.AccountStore`` on a ``MemoryStore``; ``clock`` gives UNIX seconds."""

    def __init__(self, store: MemoryStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # -------------------------------------------------------------------- users

    async def create_user(self, user: User) -> User:
        """Store ``user`` as a new active account made now (its status, failed_logins, locked_until
        and created_at are set here). DuplicateEmail when the address or user_id is taken, or its
        ``xspe`` names no SPE (the columns' unique and foreign keys)."""
        await asyncio.sleep(0)
        users = self.store.users
        taken = user.user_id in users or any(u.email == user.email for u in users.values())
        if taken or (user.xspe is not None and user.xspe not in self.store.spes):
            raise DuplicateEmail(user.email)
        created = dataclasses.replace(user, status=ACTIVE, failed_logins=0, locked_until=None, created_at=self.clock())
        users[created.user_id] = created
        return created

    async def get_user(self, user_id: str) -> User | None:
        await asyncio.sleep(0)
        return self.store.users.get(user_id)

    async def find_by_email(self, email: str) -> User | None:
        """The account with exactly this address (callers case-fold it), or None."""
        await asyncio.sleep(0)
        return next((u for u in self.store.users.values() if u.email == email), None)

    async def list_users(self) -> list[User]:
        """Every account, oldest first (created_at; ties in the order they were made)."""
        await asyncio.sleep(0)
        return sorted(self.store.users.values(), key=lambda u: u.created_at)

    async def users_page(self, xspe: str | None, limit: int, offset: int) -> tuple[list[User], int]:
        """Accounts (only those of ``xspe`` if given), oldest first (created_at, then user_id): one
        page of ``limit`` from ``offset`` and how many there are in all (the admin API's list)."""
        await asyncio.sleep(0)
        matching = [u for u in self.store.users.values() if xspe is None or u.xspe == xspe]
        matching.sort(key=lambda u: (u.created_at, u.user_id))
        return page(matching, limit, offset)

    async def emails(self, user_ids: set[str]) -> dict[str, str]:
        """user_id -> e-mail address of those of ``user_ids`` that exist."""
        await asyncio.sleep(0)
        users = self.store.users
        return {user_id: users[user_id].email for user_id in sorted(user_ids) if user_id in users}

    async def update_user(self, user_id: str, **values: object) -> None:
        """Change columns of a user (User's field names; TypeError for another name); disabling or
        a new password ends their sessions. An unknown user changes nothing."""
        await asyncio.sleep(0)
        user = self.store.users.get(user_id)
        if user is not None:
            self._replace(user, values)
        if values.get("status") == DISABLED or "password_hash" in values:
            self._end_sessions(user_id)

    async def store_rehash(self, user_id: str, password_hash: str) -> None:
        """The same password hashed with current parameters (sessions stay)."""
        await asyncio.sleep(0)
        user = self.store.users.get(user_id)
        if user is not None:
            self.store.users[user_id] = dataclasses.replace(user, password_hash=password_hash)

    # ----------------------------------------------------------------- sessions

    async def create_session(self, digest: str, user_id: str, csrf_token: str, expires_at: float) -> None:
        """A new session made now, idle deadline ``expires_at``; sessions whose deadline has passed
        are deleted in the same step (as the SQL twin, which keeps the table bounded so). IntegrityError
        when ``user_id`` does not exist or a live session has this digest (nothing changes then)."""
        await asyncio.sleep(0)
        now = self.clock()
        sessions = self.store.sessions
        if user_id not in self.store.users:
            raise IntegrityError("no user with this user_id")
        found = sessions.get(digest)
        if found is not None and not found.expires_at < now:  # an expired one is cleaned up first
            raise IntegrityError("a session with this digest exists")
        for gone in [d for d, s in sessions.items() if s.expires_at < now]:
            del sessions[gone]
        sessions[digest] = SessionRow(digest, user_id, csrf_token, created_at=now, expires_at=expires_at)

    async def get_session(self, digest: str, max_age: float) -> WebSession | None:
        """The live session with that digest (idle deadline not passed, made less than ``max_age``
        seconds ago), of an active user; None otherwise."""
        await asyncio.sleep(0)
        now = self.clock()
        found = self.store.sessions.get(digest)
        if found is None or not (found.expires_at > now and found.created_at > now - max_age):
            return None
        user = self.store.users.get(found.user_id)
        if user is None or user.status != ACTIVE:
            return None
        return WebSession(digest, user, found.csrf_token, found.expires_at, found.created_at)

    async def touch_session(self, digest: str, expires_at: float) -> None:
        """Move a session's idle deadline (a request was seen)."""
        await asyncio.sleep(0)
        found = self.store.sessions.get(digest)
        if found is not None:
            found.expires_at = expires_at

    async def delete_session(self, digest: str) -> None:
        await asyncio.sleep(0)
        self.store.sessions.pop(digest, None)

    async def count_sessions(self, user_id: str) -> int:
        """The user's stored sessions, expired ones not yet cleaned up included (as SQL counts rows)."""
        await asyncio.sleep(0)
        return sum(1 for s in self.store.sessions.values() if s.user_id == user_id)

    # ------------------------------------------------------------------ helpers

    def _replace(self, user: User, values: dict[str, object]) -> None:
        """Write ``user`` with ``values``; IntegrityError where the table's keys refuse the change (an
        e-mail address or user_id taken, a user_id changed under sessions that name it)."""
        changed = dataclasses.replace(user, **values)  # type: ignore[arg-type]
        users = self.store.users
        if changed.email != user.email and any(u.email == changed.email for u in users.values()):
            raise IntegrityError("a user with this e-mail address exists")
        if changed.user_id != user.user_id:
            named = any(s.user_id == user.user_id for s in self.store.sessions.values())
            if changed.user_id in users or named:
                raise IntegrityError("the user_id is taken or named by sessions")
            del users[user.user_id]
        users[changed.user_id] = changed

    def _end_sessions(self, user_id: str) -> None:
        sessions = self.store.sessions
        for gone in [d for d, s in sessions.items() if s.user_id == user_id]:
            del sessions[gone]
