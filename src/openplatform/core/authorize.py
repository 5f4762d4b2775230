"""SPEC §2.1 / RFC 6749 §4.1.1: ``GET /oauth/connect`` issues a code without a login.

Installing the app is the customer's consent, so there is no screen: the app
must be active and installed for the customer (or for the customer's whole
SPE), and the customer must belong to ``xspe``. Until app_id and redirect_uri
are trusted, errors are answered directly (redirecting to an unchecked URI
would make an open redirector); after that they go back to the app
(RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from openplatform import events
from openplatform.core import lifecycle, pkce
from openplatform.core.context import Platform
from openplatform.core.redirect_uri import RedirectUriError, ascii_url, check_redirect_uri, without_params
from openplatform.core.store import (
    AppStorage,
    AuditLog,
    BackingStorage,
    CodeStorage,
    CustomerStorage,
    InstallationLookup,
)
from openplatform.errors import OAuthError, echo
from openplatform.models import ACTIVE, INSTALL_LOGIN, App, AuthorizationCode, Installation


class InstallationStorage(InstallationLookup, CustomerStorage, Protocol):
    """What finding the installation reads: the customer and the installation a code stands on."""


class ConnectStorage(AppStorage, InstallationStorage, BackingStorage, CodeStorage, AuditLog, Protocol):
    """What ``connect`` uses: it reads the app, customer, installations and their state, saves a code."""


@dataclass(frozen=True, slots=True)
class RedirectError(Exception):
    """An error to deliver to the (trusted) redirect_uri."""

    redirect_uri: str
    error: OAuthError
    state: str | None


# What the server appends to a redirect_uri (RFC 6749 §4.1.2, §4.1.2.1).
ADDED_PARAMS = frozenset({"code", "state", "error", "error_description"})


def with_query(url: str, extra: list[tuple[str, str]]) -> str:
    """Append parameters, keeping the URL's own query (SPEC §2.1); the host as IDNA A-labels (SPEC §9).

    Any query is allowed in a redirect_uri, but a pair of its own named like one the server appends
    (``ADDED_PARAMS``, however percent-encoded) is left out: the app would otherwise get ``code`` or
    ``state`` twice, and which of the two it reads depends on its framework.
    """
    parts = urlsplit(ascii_url(url))
    own = without_params(parts.query, ADDED_PARAMS)
    query = own + ("&" if own else "") + urlencode(extra, quote_via=quote)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def error_redirect(err: RedirectError) -> str:
    pairs = [("error", err.error.error), ("error_description", err.error.message)]
    if err.state is not None:
        pairs.append(("state", err.state))
    return with_query(err.redirect_uri, pairs)


async def trusted_app(platform: Platform[AppStorage], params: dict[str, str]) -> tuple[App, str]:
    app_id = params.get("app_id")
    if not app_id:
        raise OAuthError("invalid_request", "The app_id parameter is required.", field="app_id")
    app = await platform.store.get_app(app_id)
    if app is None or not app.active:
        raise OAuthError("invalid_client", "Unknown or suspended app_id.")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise OAuthError("invalid_redirect_uri", "The redirect_uri parameter is required.")
    try:
        check_redirect_uri(redirect_uri, app.host_url)
    except RedirectUriError as exc:
        raise OAuthError("invalid_redirect_uri", f"Bad redirect_uri: {exc}") from exc
    return app, redirect_uri


def requested_scope(app: App, scope: str | None) -> str:
    scopes = (scope or INSTALL_LOGIN).split()
    unknown = [s for s in scopes if s != INSTALL_LOGIN and s not in app.scopes]
    if not scopes or unknown:
        raise OAuthError("invalid_scope", f"Scope not allowed for this app: {echo(' '.join(unknown) or scope)}.")
    return " ".join(dict.fromkeys(scopes))


async def find_installation(
    platform: Platform[InstallationStorage], app: App, xspe: str, customer_id: str
) -> Installation:
    customer = await platform.store.get_customer(customer_id)
    if customer is None or customer.xspe != xspe:
        raise OAuthError("access_denied", "customer_id does not belong to xspe.")
    if customer.status != ACTIVE:
        raise OAuthError("access_denied", "The customer is disabled.")
    # the customer's own installation first, then the SPE's; read fresh, as it issues a code (SPEC §8)
    install = await platform.store.installation_for(app.app_id, xspe, customer_id)
    if install is None:
        raise OAuthError("access_denied", "The app is not installed for this customer.")
    return install


async def connect(platform: Platform[ConnectStorage], params: dict[str, str]) -> str:
    """Validate the request and return the URL to redirect to (with code and state)."""
    app, redirect_uri = await trusted_app(platform, params)
    state = params.get("state")
    try:
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type")
        scope = requested_scope(app, params.get("scope"))
        xspe = params.get("xspe") or _missing("xspe")
        customer_id = params.get("customer_id") or _missing("customer_id")
        challenge = pkce.validate_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
        install = await find_installation(platform, app, xspe, customer_id)
        reason = await lifecycle.unbacked(platform, _Requested(install, customer_id), fresh=True)  # SPEC §8
        if reason is not None:
            raise OAuthError("access_denied", f"No code can be issued: {reason}.")
    except OAuthError as exc:
        platform.audit(events.CONNECT_DENIED, app_id=app.app_id, error=exc.error)
        raise RedirectError(redirect_uri, exc, state) from exc
    raw, digest = platform.keyring.mint()
    await platform.store.save_code(
        AuthorizationCode(
            digest=digest,
            app_id=app.app_id,
            installation_id=install.installation_id,
            customer_id=customer_id,
            xspe=xspe,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=challenge,
            expires_at=platform.clock() + platform.settings.code_ttl,
        )  # fmt: skip
    )
    platform.audit(events.CODE_ISSUED, app_id=app.app_id, xspe=xspe, customer_id=customer_id)
    pairs = [("code", raw)] + ([("state", state)] if state is not None else [])
    return with_query(redirect_uri, pairs)


@dataclass(frozen=True, slots=True)
class _Requested:
    """The code about to be issued: the installation that matched, for the customer asked for."""

    installation: Installation
    customer_id: str

    @property
    def app_id(self) -> str:
        return self.installation.app_id

    @property
    def installation_id(self) -> str:
        return self.installation.installation_id

    @property
    def xspe(self) -> str:
        return self.installation.xspe


def _missing(name: str) -> str:
    raise OAuthError("invalid_request", f"The {name} parameter is required.", field=name)
