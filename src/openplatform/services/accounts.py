"""Accounts of the management screens: users, passwords, sign-in with lock-out, sessions.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile)
and re-hashed on sign-in when those parameters change. After
``MAX_FAILED_SIGN_INS`` wrong passwords in a row an account is locked for
``LOCK_SECONDS``; while locked, no password is even checked. An unknown e-mail
costs the same argon2 verification as a known one, so timing does not reveal
which addresses have accounts. Sessions are random 256-bit values kept in an
HttpOnly cookie; the server stores only their keyed digest, with the session's
CSRF token, for ``SESSION_SECONDS``. Hashing runs in a worker thread (argon2
releases the GIL), so a sign-in never stalls the token endpoints served by the
same event loop.
"""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
from dataclasses import dataclass
from typing import NoReturn

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from openplatform.security import Keyring, new_id, new_token
from openplatform.services.validation import NotFound, ValidationError
from openplatform.storage.sql.accounts import ACTIVE, DISABLED, AccountStore, DuplicateEmail, User, WebSession
from openplatform.storage.sql.manage import Management

ROLES = ("developer", "spe-admin", "admin")
MAX_FAILED_SIGN_INS = 5
LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 12 * 3600
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a request from costing more
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# argon2id with RFC 9106's second recommended option (§4: t=3, 64 MiB, p=4).
ARGON2 = {"type": Type.ID, "time_cost": 3, "memory_cost": 65536, "parallelism": 4}
hasher = PasswordHasher(**ARGON2)  # type: ignore[arg-type]


@functools.cache
def _dummy_hash() -> str:
    """What an unknown address is checked against (made once, on first need)."""
    return hasher.hash(secrets.token_urlsafe(16))


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
    def __init__(self, store: AccountStore, management: Management, keyring: Keyring) -> None:
        self.store = store
        self.db = management
        self.keyring = keyring

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
            raise NotFound(f"no SPE {xspe!r}")
        return xspe

    async def create_user(self, email: str, role: str, password: str, xspe: str | None = None) -> User:
        email = check_email(email)
        xspe = await self._check_role(role, xspe)
        password_hash = await asyncio.to_thread(hasher.hash, check_password(password))
        draft = User(new_id("usr_"), email, role, xspe, ACTIVE, 0, None, 0.0, password_hash)
        try:
            user = await self.store.create_user(draft)
        except DuplicateEmail as exc:
            raise ValidationError("email", "is already used by another account") from exc
        await self.db.audit("user.created", user_id=user.user_id, role=role, xspe=xspe)
        return user

    async def ensure_user(self, email: str, role: str, password: str, xspe: str | None = None) -> User:
        """Create the account, or reset an existing one to this role, SPE and password (demo)."""
        existing = await self.store.find_by_email(check_email(email))
        if existing is None:
            return await self.create_user(email, role, password, xspe)
        xspe = await self._check_role(role, xspe)
        await self.store.update_user(
            existing.user_id, role=role, xspe=xspe, status=ACTIVE, failed_logins=0, locked_until=None,
            password_hash=await asyncio.to_thread(hasher.hash, check_password(password)),
        )  # fmt: skip
        user = await self.store.get_user(existing.user_id)
        assert user is not None
        return user

    # ------------------------------------------------------------------ sign-in

    async def sign_in(self, email: str, password: str, ip: str = "") -> NewSession:
        user = await self.store.find_by_email((email or "").strip().lower())
        now = self.now()
        if user is not None and user.locked_for(now) > 0:
            await self.db.audit("user.sign_in_locked", user_id=user.user_id, ip=ip)
            raise SignInRefused(_locked_message(user.locked_for(now)), user.locked_for(now))
        if user is None or not await asyncio.to_thread(_verify, user.password_hash, password or ""):
            await self._failed(user, ip)
        if not user.active:
            raise SignInRefused("This account is disabled. Ask a platform admin to enable it.")
        needs_rehash = hasher.check_needs_rehash(user.password_hash)
        rehash = await asyncio.to_thread(hasher.hash, password) if needs_rehash else None
        await self.store.record_success(user.user_id, rehash)
        await self.db.audit("user.signed_in", user_id=user.user_id, ip=ip)
        return await self._new_session(user)

    async def _failed(self, user: User | None, ip: str) -> NoReturn:
        if user is None:
            await asyncio.to_thread(_verify, _dummy_hash(), "x")  # same cost as a known address
            await self.db.audit("user.sign_in_failed", ip=ip)
            raise SignInRefused("The e-mail or the password is wrong.")
        after = await self.store.record_failure(user.user_id, MAX_FAILED_SIGN_INS, LOCK_SECONDS)
        await self.db.audit("user.sign_in_failed", user_id=user.user_id, ip=ip)
        locked = after.locked_for(self.now()) if after else 0.0
        if locked > 0:
            await self.db.audit("user.locked", user_id=user.user_id, ip=ip, seconds=LOCK_SECONDS)
            raise SignInRefused(_locked_message(locked), locked)
        raise SignInRefused("The e-mail or the password is wrong.")

    async def _new_session(self, user: User) -> NewSession:
        cookie_value, csrf_token = new_token(), new_token()
        expires_at = self.now() + SESSION_SECONDS
        await self.store.create_session(self.keyring.digest(cookie_value), user.user_id, csrf_token, expires_at)
        return NewSession(cookie_value, csrf_token, user, expires_at)

    async def session(self, cookie_value: str | None) -> WebSession | None:
        if not cookie_value or len(cookie_value) > 100:
            return None
        return await self.store.get_session(self.keyring.digest(cookie_value))

    async def sign_out(self, session: WebSession) -> None:
        await self.store.delete_session(session.digest)
        await self.db.audit("user.signed_out", user_id=session.user.user_id)

    # ----------------------------------------------------- platform admin actions

    async def set_status(self, user_id: str, status: str) -> None:
        if status not in (ACTIVE, DISABLED):
            raise ValidationError("status", "must be active or disabled")
        if await self.store.get_user(user_id) is None:
            raise NotFound(f"no user {user_id!r}")
        await self.store.update_user(user_id, status=status)
        await self.db.audit(f"user.{'enabled' if status == ACTIVE else 'disabled'}", user_id=user_id)

    async def unlock(self, user_id: str) -> None:
        await self.store.update_user(user_id, failed_logins=0, locked_until=None)
        await self.db.audit("user.unlocked", user_id=user_id)


def _verify(password_hash: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _locked_message(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return (
        f"Too many wrong passwords: this account is locked for {minutes} more minute"
        f"{'s' if minutes != 1 else ''}. Try again later or ask a platform admin to unlock it."
    )


def build_accounts(management: Management, keyring: Keyring) -> Accounts:
    """Accounts on the same engine and clock as the management path."""
    return Accounts(AccountStore(management.engine, management.clock), management, keyring)
