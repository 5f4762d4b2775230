"""Accounts of the management screens: users, passwords, sign-in with lock-out, sessions.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile)
and re-hashed on sign-in when those parameters change. Every argon2 computation
goes through ``hash_gate``: at most ``MAX_CONCURRENT_HASHES`` at once in the
process, in threads of their own (argon2 releases the GIL), so a sign-in flood
costs at most that many times 64 MiB and never stalls the token endpoints
served by the same event loop.

Lock-out is per (account, client IP) (SPEC §9): ``login_failures`` of the rate
limiter (5 per 15 minutes by default, one more every 3 minutes after that) is
spent by each attempt *before* the password is checked, so concurrent guesses
cannot slip past it, and refilled by a right password. While it is empty, no
password is even checked; the same account signs in from any other address.
Unknown e-mails are counted the same way and cost the same argon2 verification
(against a dummy hash made with the same parameters), so neither the timing nor
the lock message tells which addresses have accounts.

Sessions are random 256-bit values kept in an HttpOnly cookie; the server
stores only their keyed digest, with the session's CSRF token. A session ends
after ``idle_seconds`` without a request, and ``SESSION_SECONDS`` after sign-in
in any case.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import secrets
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from openplatform import events
from openplatform.core.ratelimit import DEFAULTS, Limiter, RateLimiter
from openplatform.records import ACTIVE, DISABLED, DuplicateEmail, User, WebSession
from openplatform.security import Keyring, new_id, new_token
from openplatform.services.stores import AccountStore, ManagementStore, Stores
from openplatform.services.validation import NotFound, ValidationError

T = TypeVar("T")
ROLES = ("developer", "spe-admin", "admin")
LOGIN = "login"  # rate-limiter bucket: sign-in attempts per client IP
FAILURES = "login_failures"  # rate-limiter bucket: wrong passwords per (account, client IP)
MAX_FAILED_SIGN_INS, LOCK_SECONDS = DEFAULTS[FAILURES]  # the defaults: 5 at once, refilled over 15 minutes
SESSION_SECONDS = 12 * 3600  # absolute lifetime of a session
SESSION_IDLE_SECONDS = 1800  # default of OPENPLATFORM_SESSION_IDLE_SECONDS
# SPEC §9: at most 4 argon2 computations at once per process — and fewer on a small machine, so that
# a sign-in flood always leaves a core to the token endpoints (argon2 runs outside the GIL).
MAX_CONCURRENT_HASHES = max(1, min(4, (os.cpu_count() or 2) - 1))
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a request from costing more
WRONG = "The e-mail or the password is wrong."
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# argon2id with RFC 9106's second recommended option (§4: t=3, 64 MiB, p=4).
ARGON2 = {"type": Type.ID, "time_cost": 3, "memory_cost": 65536, "parallelism": 4}
hasher = PasswordHasher(**ARGON2)  # type: ignore[arg-type]


class HashGate:
    """At most ``limit`` argon2 computations at once in this process; the others wait their turn.

    An ``asyncio.Semaphore`` (one per event loop) admits them, and they run in a
    thread pool of exactly ``limit`` threads, never in the default executor.
    ``running``, ``waiting`` and ``peak`` are there to be observed (tests).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.waiting = 0
        self.peak = 0
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._threads = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="argon2")

    async def run(self, work: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.limit)
        self.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await loop.run_in_executor(self._threads, functools.partial(work, *args))
        finally:
            self.running -= 1
            semaphore.release()


hash_gate = HashGate(MAX_CONCURRENT_HASHES)


@functools.cache
def _dummy_hash(with_hasher: PasswordHasher) -> str:
    """What an unknown address is checked against: made once per hasher, so with the same parameters."""
    return with_hasher.hash(secrets.token_urlsafe(16))


class SignInRefused(Exception):
    """Wrong e-mail or password, disabled account, or locked account (the message says which is safe)."""

    def __init__(self, message: str, locked_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.locked_seconds = locked_seconds


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie_value: str
    csrf_token: str
    user: User
    expires_at: float


def check_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not email:
        raise ValidationError("email", "is required")
    if len(email) > 320 or not _EMAIL.match(email):
        raise ValidationError("email", "must be an e-mail address like name@example.com")
    return email


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationError("password", f"must be at most {MAX_PASSWORD} characters")
    return password


class Accounts:
    def __init__(
        self, store: AccountStore, management: ManagementStore, keyring: Keyring, limiter: Limiter | None = None,
        idle_seconds: float = SESSION_IDLE_SECONDS,
    ) -> None:  # fmt: skip
        self.store = store
        self.db = management
        self.keyring = keyring
        # Without the server's limiter (command line, tests): lock-outs counted in this object only.
        self.limiter: Limiter = limiter if limiter is not None else RateLimiter("off", clock=store.clock)
        self.idle_seconds = idle_seconds

    def now(self) -> float:
        return self.store.clock()

    async def _check_role(self, role: str, xspe: str | None) -> str | None:
        if role not in ROLES:
            raise ValidationError("role", f"must be one of {', '.join(ROLES)}")
        if role != "spe-admin":
            if xspe:
                raise ValidationError("xspe", "only an spe-admin belongs to an SPE")
            return None
        if not xspe:
            raise ValidationError("xspe", "an spe-admin needs the SPE they administer")
        if await self.db.get_spe(xspe) is None:
            raise NotFound("no SPE", xspe)
        return xspe

    async def create_user(self, email: str, role: str, password: str, xspe: str | None = None) -> User:
        email = check_email(email)
        xspe = await self._check_role(role, xspe)
        password_hash = await hash_gate.run(hasher.hash, check_password(password))
        draft = User(new_id("usr_"), email, role, xspe, ACTIVE, 0, None, 0.0, password_hash)
        try:
            user = await self.store.create_user(draft)
        except DuplicateEmail as exc:
            raise ValidationError("email", "is already used by another account") from exc
        await self.db.audit(events.USER_CREATED, user_id=user.user_id, role=role, xspe=xspe)
        return user

    # ------------------------------------------------------------------ sign-in

    def _account_key(self, email: str) -> str:
        """The account part of a lock-out bucket: a keyed digest (no e-mail address in Redis)."""
        return self.keyring.digest("sign-in:" + email)[:32] + "|"

    async def sign_in(self, email: str, password: str, ip: str = "") -> NewSession:
        email = (email or "").strip().lower()
        pair = self._account_key(email) + ip
        if wait := await self.limiter.take(FAILURES, pair):  # spent before checking: no race past it
            user = await self.store.find_by_email(email)
            await self.db.audit(events.USER_SIGN_IN_LOCKED, ip=ip, **({"user_id": user.user_id} if user else {}))
            raise SignInRefused(_locked_message(wait), wait)
        user = await self.store.find_by_email(email)
        if user is None:
            await hash_gate.run(_verify_dummy, hasher, password or "")  # the same cost as a known address
            await self._failed(None, pair, ip)
        if not await hash_gate.run(_verify, hasher, user.password_hash, password or ""):
            await self._failed(user, pair, ip)
        await self.limiter.forget(FAILURES, pair)  # the right password resets the count
        if not user.active:
            raise SignInRefused("This account is disabled. Ask a platform admin to enable it.")
        if hasher.check_needs_rehash(user.password_hash):
            await self.store.store_rehash(user.user_id, await hash_gate.run(hasher.hash, password))
        await self.db.audit(events.USER_SIGNED_IN, user_id=user.user_id, ip=ip)
        return await self._new_session(user)

    async def _failed(self, user: User | None, pair: str, ip: str) -> NoReturn:
        who = {"user_id": user.user_id} if user else {}
        await self.db.audit(events.USER_SIGN_IN_FAILED, ip=ip, **who)
        wait = await self.limiter.take(FAILURES, pair, spend=False)
        if wait > 0:
            if user is not None:  # shown to platform admins, who can unlock
                await self.store.update_user(user.user_id, locked_until=self.now() + wait)
            await self.db.audit(events.USER_LOCKED, ip=ip, seconds=wait, **who)
            raise SignInRefused(_locked_message(wait), wait)
        raise SignInRefused(WRONG)

    async def _new_session(self, user: User) -> NewSession:
        cookie_value, csrf_token = new_token(), new_token()
        expires_at = self.now() + min(self.idle_seconds, SESSION_SECONDS)
        await self.store.create_session(self.keyring.digest(cookie_value), user.user_id, csrf_token, expires_at)
        return NewSession(cookie_value, csrf_token, user, expires_at)

    async def session(self, cookie_value: str | None) -> WebSession | None:
        """The live session of that cookie; seeing it moves its idle deadline (written at most about
        once a minute, so a page view is not always a write)."""
        if not cookie_value or len(cookie_value) > 100:
            return None
        # A session begun under an old server key is found too (SPEC §10), until it ends.
        found = await self.keyring.find(self._live_session, Keyring.digest, cookie_value)
        if found is None:
            return None
        deadline = min(found.created_at + SESSION_SECONDS, self.now() + self.idle_seconds)
        if abs(deadline - found.expires_at) >= min(60.0, self.idle_seconds / 10):
            await self.store.touch_session(found.digest, deadline)
        return found

    async def _live_session(self, digest: str) -> WebSession | None:
        return await self.store.get_session(digest, SESSION_SECONDS)

    async def sign_out(self, session: WebSession) -> None:
        await self.store.delete_session(session.digest)
        await self.db.audit(events.USER_SIGNED_OUT, user_id=session.user.user_id)

    # ---------------------------------------------------------------- passwords

    async def change_password(self, session: WebSession, current: str, new: str, ip: str = "") -> NewSession:
        """The signed-in user's own change: the current password is required (a wrong one counts
        towards the lock-out like a sign-in). Every session of the user ends; the new one returned
        replaces the caller's."""
        check_password(new)
        user = session.user
        pair = self._account_key(user.email) + ip
        if wait := await self.limiter.take(FAILURES, pair):
            raise ValidationError("current_password", _locked_message(wait))
        if not await hash_gate.run(_verify, hasher, user.password_hash, current or ""):
            await self.db.audit(events.USER_PASSWORD_CHANGE_FAILED, user_id=user.user_id, ip=ip)
            if wait := await self.limiter.take(FAILURES, pair, spend=False):
                raise ValidationError("current_password", _locked_message(wait))
            raise ValidationError("current_password", "is wrong")
        await self.limiter.forget(FAILURES, pair)
        new_hash = await hash_gate.run(hasher.hash, new)
        await self.store.update_user(user.user_id, password_hash=new_hash)  # ends every session
        await self.db.audit(events.USER_PASSWORD_CHANGED, user_id=user.user_id, ip=ip)
        return await self._new_session(user)

    async def set_password(self, user_id: str, password: str, by: str | None = None) -> User:
        """A platform admin's (or the command line's) new password for an account: its sessions end
        and its lock-outs are lifted."""
        user = await self.store.get_user(user_id)
        if user is None:
            raise NotFound("no user", user_id)
        new_hash = await hash_gate.run(hasher.hash, check_password(password))
        await self.store.update_user(user_id, password_hash=new_hash, failed_logins=0, locked_until=None)
        await self.limiter.forget(FAILURES, self._account_key(user.email), prefix=True)
        await self.db.audit(events.USER_PASSWORD_SET, user_id=user_id, **({"by": by} if by else {}))
        return user

    async def set_password_by_email(self, email: str, password: str, by: str | None = None) -> User:
        check_password(password)
        user = await self.store.find_by_email(check_email(email))
        if user is None:
            raise NotFound("no account with the e-mail", email.strip().lower())
        return await self.set_password(user.user_id, password, by)

    # ----------------------------------------------------- platform admin actions

    async def set_status(self, user_id: str, status: str) -> None:
        if status not in (ACTIVE, DISABLED):
            raise ValidationError("status", "must be active or disabled")
        if await self.store.get_user(user_id) is None:
            raise NotFound("no user", user_id)
        await self.store.update_user(user_id, status=status)
        await self.db.audit(events.USER_ENABLED if status == ACTIVE else events.USER_DISABLED, user_id=user_id)

    async def unlock(self, user_id: str) -> None:
        """Lift the account's lock-outs from every address."""
        user = await self.store.get_user(user_id)
        if user is None:
            raise NotFound("no user", user_id)
        await self.limiter.forget(FAILURES, self._account_key(user.email), prefix=True)
        await self.store.update_user(user_id, failed_logins=0, locked_until=None)
        await self.db.audit(events.USER_UNLOCKED, user_id=user_id)


def _verify(with_hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return with_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _verify_dummy(with_hasher: PasswordHasher, password: str) -> bool:
    _verify(with_hasher, _dummy_hash(with_hasher), password)
    return False


def _locked_message(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return (
        f"Too many wrong passwords: this account is locked from your address for {minutes} more minute"
        f"{'s' if minutes != 1 else ''}. Try again later or ask a platform admin to unlock it."
    )


async def app_owner(store: AccountStore, email: str) -> User:
    """The developer an app is registered for: ``app create --owner EMAIL``, the admin API's ``owner``.

    The app is meant to appear in that developer's console (SPEC §11), and only developers have
    one, so an account of another role is refused rather than made the owner of an app nobody can
    manage. Raises NotFound (no account with that e-mail) or ValidationError on ``owner``.
    """
    user = await store.find_by_email(email.strip().lower())
    if user is None:
        raise NotFound("no account with the e-mail", email)
    if user.role != "developer":
        raise ValidationError("owner", f"must be a developer's account, not an {user.role}'s (only developers "
                                       "have a console to manage an app in)")  # fmt: skip
    return user


def build_accounts(
    stores: Stores, keyring: Keyring, limiter: Limiter | None = None,
    idle_seconds: float = SESSION_IDLE_SECONDS,
) -> Accounts:  # fmt: skip
    """Accounts on the process's stores (and, in the server, its limiter)."""
    return Accounts(stores.accounts, stores.management, keyring, limiter, idle_seconds)
