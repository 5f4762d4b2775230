"""Bearer tokens on the Open APIs (RFC 6750) and what a token may reach.

A token is accepted as ``?access_token=`` (as the docs show) or
``Authorization: Bearer``. The checks on every call: known, unexpired,
unrevoked access token; its app still active; the caller's IP in the app's
whitelist; for a user token, everything behind it still there (SPEC §8,
``core.lifecycle``: installation, customer, SPE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from openplatform.core import lifecycle, tokens
from openplatform.core.context import Platform
from openplatform.core.ip_policy import enforce_whitelist
from openplatform.core.store import AppStorage, BackingStorage, TokenStorage
from openplatform.errors import OAuthError
from openplatform.models import INSTALL_LOGIN, App, Customer, Installations, TokenRecord

BEARER_CHALLENGE = 'Bearer realm="openplatform"'


def granted(token: TokenRecord, app: App, scope: str) -> bool:
    """A token's scope counts only while its app has it registered (``install_login`` is implied by the
    installation, never registered); the token keeps the scope string it was issued with."""
    # The split list, not ``token.scopes``: the same members without building a frozenset per check.
    return scope in token.scope.split() and (scope == INSTALL_LOGIN or scope in app.scopes)


def effective_scope(token: TokenRecord, app: App) -> str:
    """The token's scopes that still count (``granted``), in its order: what introspection reports."""
    return tokens.still_granted(token.scope, app.scopes)


def _invalid_token(message: str) -> OAuthError:
    return OAuthError(
        "invalid_token", message, headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'}
    )


class Placed(Protocol):
    """Where a customer is: what ``Access.can_see`` reads (a ``Customer``; tests probe with others)."""

    @property
    def customer_id(self) -> str | None: ...

    @property
    def xspe(self) -> str | None: ...


@dataclass(slots=True)  # not frozen: see the docstring
class Access:
    """An authenticated Open API caller (nothing assigns to its fields once built; ``require_visible``
    notes the last customer it let through).

    Not a frozen dataclass: its ``__init__`` sets each field through ``object.__setattr__``, which
    measured 5,600 instructions per construction against 1,800 (callgrind, 3.11), and one is built
    on every Open API call.
    """

    token: TokenRecord
    app: App
    # The store's as it caches them (shared by every request: nothing modifies them), not a copy.
    installations: Installations
    # The customer object ``require_visible`` let through last: ``require_read`` of that same object
    # (``Directory.get_customer`` checks it right after) need not walk the reach again (1,300
    # instructions a GET). By identity: another object, equal or not, is checked.
    seen: Customer | None = field(default=None, repr=False, compare=False)

    @property
    def is_app_token(self) -> bool:
        return self.token.is_app_token

    def require_scope(self, scope: str) -> None:
        """The token has ``scope`` and its app still has it registered: a scope withdrawn from an app
        leaves the tokens already issued at once (SPEC §2.5: scopes are registered per app)."""
        if not granted(self.token, self.app, scope):
            raise OAuthError(
                "insufficient_scope",
                f"This API needs the {scope} scope.",
                headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="insufficient_scope", scope="{scope}"'},
            )

    def spe_reach(self) -> frozenset[str]:
        """SPEs whose every customer this token may see: those of an app token's SPE-wide
        installations (``can_see``'s first case), none for a user token."""
        if self.token.installation_id is not None:  # a user token: its own customer only
            return frozenset()
        return self.installations.spe_wide

    def xspes(self) -> list[str]:
        """Every SPE the token touches, in a stable order."""
        found = self.installations.xspes if self.is_app_token else {self.token.xspe or ""}
        return sorted(x for x in found if x)

    def can_see(self, customer: Placed) -> bool:
        """Whether ``customer`` is within the token's reach. A user token sees its own customer; an app
        token the customers of its SPE-wide installations' SPEs and those of its one-customer
        installations: two lookups in the sets ``Installations`` built when it was read, whatever the
        number of installations (it reads ``installation_id`` rather than the ``is_app_token``
        properties, a Python call each: the token-checked GET asks this twice per call)."""
        if self.token.installation_id is not None:  # a user token
            own = self.token.customer_id
            return bool(own) and customer.customer_id == own
        reach = self.installations
        return customer.xspe in reach.spe_wide or customer.customer_id in reach.customers

    def require_visible(self, customer: Customer | None) -> Customer:
        """Outside the token's reach looks exactly like absent: 404, never 403."""
        if customer is None or not self.can_see(customer):
            raise OAuthError("not_found", "No such customer.")
        self.seen = customer
        return customer

    def require_read(self, customer: Customer, scope: str) -> None:
        """``customer`` is visible (``require_visible``), and: app tokens need ``scope``; a user token
        reads its own customer by install_login."""
        if customer is not self.seen:
            self.require_visible(customer)
        token = self.token
        if token.installation_id is None or INSTALL_LOGIN not in token.scope.split():  # an app token, or no login
            self.require_scope(scope)

    def require_app_token(self) -> None:
        if not self.is_app_token:
            raise OAuthError("access_denied", "This API needs an app token (POST /oauth/credit/token).")

    def own_customer_id(self) -> str:
        """The customer of a user token: the customer-side (``/api/specp/...``) APIs act on it."""
        if self.is_app_token or not self.token.customer_id:
            raise OAuthError("access_denied", "This API needs a user token (from /oauth/connect).")
        return self.token.customer_id


def bearer_from(authorization: str | None, query_token: str | None) -> str:
    header_token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            header_token = value.strip() or None
    if header_token and query_token:
        raise OAuthError("invalid_request", "Send the access token once: header or query, not both.")
    token = header_token or query_token
    if not token:
        # RFC 6750 §3.1: a request without any token gets the challenge, but no error code.
        challenge = {"WWW-Authenticate": BEARER_CHALLENGE}
        raise OAuthError("invalid_token", "An access token is required.", headers=challenge)
    if len(token) > 512:
        raise _invalid_token("The access token is malformed.")
    return token


class BearerStorage(AppStorage, TokenStorage, BackingStorage, Protocol):
    """What a bearer check reads: the token, its app and installations, what it stands on."""


async def authenticate_bearer(platform: Platform[BearerStorage], raw: str, client_ip: Callable[[], str]) -> Access:
    """The checks of every Open API call (module docstring). ``client_ip`` gives the caller's address;
    it is asked only when the app has a whitelist: an empty one lets every address in, and finding
    the address (behind trusted proxies) is work most calls need not do."""
    store = platform.store
    # ``tokens.find_token``, inline: the current key's digest, the fallbacks only on a miss.
    record = await store.get_token(platform.keyring.token_digest(raw))
    if record is None:
        record = await tokens.find_token_elsewhere(platform, raw)
    if record is None or record.kind != "access" or record.revoked_at is not None:
        raise _invalid_token("The access token is unknown or revoked.")
    if record.expires_at <= platform.clock():
        raise _invalid_token("The access token has expired.")
    app = await store.get_app(record.app_id)
    if app is None or not app.active:
        raise _invalid_token("The app of this token is suspended.")
    if app.ip_whitelist:
        enforce_whitelist(client_ip(), app.ip_whitelist)
    if record.installation_id is not None:  # a user token (an app token stands on its app alone)
        reason = await lifecycle.unbacked(platform, record, fresh=False)
        if reason is not None:
            raise _invalid_token(f"The token no longer works: {reason}.")
    return Access(record, app, await store.active_installations(app.app_id))
