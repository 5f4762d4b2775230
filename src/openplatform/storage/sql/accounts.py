"""Accounts of the web screens: users and their server-side sessions (tables of migration 0002).

Sessions are keyed by a keyed digest of the cookie value (like tokens), so a copy
of the database does not hold a usable session. A session's ``expires_at`` is
its idle deadline (last request + idle timeout, never past ``created_at`` + the
absolute lifetime), moved forward as requests come. Failed sign-ins are counted
per (account, IP) by the rate limiter, not here (``users.failed_logins`` is no
longer used; ``users.locked_until`` tells admins when the latest lock-out ends).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, func, insert, select, update

from openplatform.errors import IntegrityError
from openplatform.records import ACTIVE, DISABLED, DuplicateEmail, User, WebSession
from openplatform.storage.sql.database import Conn, Database
from openplatform.storage.sql.schema import users, web_sessions


def _user(row: object) -> User:
    r = dict(row)  # type: ignore[call-overload]
    return User(
        user_id=r["user_id"], email=r["email"], role=r["role"], xspe=r["xspe"], status=r["status"],
        failed_logins=r["failed_logins"], locked_until=r["locked_until"], created_at=r["created_at"],
        password_hash=r["password_hash"],
    )  # fmt: skip


class SqlAccounts:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    # -------------------------------------------------------------------- users

    async def create_user(self, user: User) -> User:
        values = dict(
            user_id=user.user_id, email=user.email, password_hash=user.password_hash, role=user.role,
            xspe=user.xspe, status=ACTIVE, failed_logins=0, locked_until=None, created_at=self.clock(),
        )  # fmt: skip
        try:
            await self.database.execute(insert(users).values(**values))
        except IntegrityError as exc:
            raise DuplicateEmail(user.email) from exc
        return _user(values)

    async def get_user(self, user_id: str) -> User | None:
        row = await self.database.read_one(select(users).where(users.c.user_id == user_id))
        return _user(row) if row else None

    async def find_by_email(self, email: str) -> User | None:
        row = await self.database.read_one(select(users).where(users.c.email == email))
        return _user(row) if row else None

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self.database.read(select(users).order_by(users.c.created_at))]

    async def users_page(self, xspe: str | None, limit: int, offset: int) -> tuple[list[User], int]:
        """Accounts (only those of ``xspe`` if given), oldest first: one page of ``limit`` from
        ``offset`` and how many there are in all (the admin API's list)."""
        where = [] if xspe is None else [users.c.xspe == xspe]
        query = select(users).where(*where).order_by(users.c.created_at, users.c.user_id)
        rows = await self.database.read(query.limit(limit).offset(offset))
        total = await self.database.scalar(select(func.count()).select_from(users).where(*where))
        return [_user(r) for r in rows], int(total or 0)

    async def emails(self, user_ids: set[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        query = select(users.c.user_id, users.c.email).where(users.c.user_id.in_(sorted(user_ids)))
        return {r["user_id"]: r["email"] for r in await self.database.read(query)}

    async def update_user(self, user_id: str, **values: object) -> None:
        """Change columns of a user; disabling or a new password ends their sessions."""

        async def transaction(conn: Conn) -> None:
            await conn.execute(update(users).where(users.c.user_id == user_id).values(**values))
            if values.get("status") == DISABLED or "password_hash" in values:
                await conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))

        await self.database.transaction(transaction)

    async def store_rehash(self, user_id: str, password_hash: str) -> None:
        """The same password hashed with current parameters (sessions stay)."""
        await self.database.execute(update(users).where(users.c.user_id == user_id).values(password_hash=password_hash))

    # ----------------------------------------------------------------- sessions

    async def create_session(self, digest: str, user_id: str, csrf_token: str, expires_at: float) -> None:
        now = self.clock()

        async def transaction(conn: Conn) -> None:
            # Opportunistic clean-up keeps the table bounded without a background job.
            await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
            await conn.execute(
                insert(web_sessions).values(
                    digest=digest, user_id=user_id, csrf_token=csrf_token, created_at=now, expires_at=expires_at
                )
            )

        await self.database.transaction(transaction)

    async def get_session(self, digest: str, max_age: float) -> WebSession | None:
        """The live session with that digest (idle deadline not passed, made less than ``max_age``
        seconds ago), of an active user; None otherwise."""
        now = self.clock()
        query = (
            select(
                users, web_sessions.c.csrf_token, web_sessions.c.expires_at, web_sessions.c.created_at.label("since")
            )
            .join(web_sessions, web_sessions.c.user_id == users.c.user_id)
            .where(
                web_sessions.c.digest == digest,
                web_sessions.c.expires_at > now,
                web_sessions.c.created_at > now - max_age,
            )
        )
        row = await self.database.read_one(query)
        if row is None or row["status"] != ACTIVE:
            return None
        return WebSession(digest, _user(row), row["csrf_token"], row["expires_at"], row["since"])

    async def touch_session(self, digest: str, expires_at: float) -> None:
        """Move a session's idle deadline (a request was seen)."""
        await self.database.execute(
            update(web_sessions).where(web_sessions.c.digest == digest).values(expires_at=expires_at)
        )

    async def delete_session(self, digest: str) -> None:
        await self.database.execute(delete(web_sessions).where(web_sessions.c.digest == digest))

    async def count_sessions(self, user_id: str) -> int:
        query = select(func.count()).select_from(web_sessions).where(web_sessions.c.user_id == user_id)
        return int(await self.database.scalar(query) or 0)
