"""The objects of SPEC §1 as plain frozen dataclasses shared by core, storage and web."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Scopes an app may register (SPEC §2.5). install_login is implied by installation.
INSTALL_LOGIN = "install_login"
REGISTRABLE_SCOPES = ("customer:read", "customer:write", "site:read", "site:write")
KNOWN_SCOPES = (INSTALL_LOGIN, *REGISTRABLE_SCOPES)

ACTIVE = "active"
SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class AppSecret:
    secret_hash: str
    expires_at: float | None  # None: current secret; a time: old secret in its grace period


@dataclass(frozen=True, slots=True)
class App:
    app_id: str
    name: str
    host_url: str
    status: str
    scopes: tuple[str, ...]
    ip_whitelist: tuple[str, ...]
    webhook_url: str | None = None
    secrets: tuple[AppSecret, ...] = ()
    owner_id: str | None = None
    created_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


@dataclass(frozen=True, slots=True)
class Spe:
    xspe: str
    name: str
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    xspe: str
    name: str
    contact: str = ""
    status: str = ACTIVE
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 1

    def public(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "xspe": self.xspe,
            "name": self.name,
            "contact": self.contact,
            "status": self.status,
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class Site:
    """A customer's website (SPEC §2.5 Open APIs); ``domain`` is an IDNA A-label hostname."""

    site_id: str
    customer_id: str
    xspe: str
    name: str
    domain: str
    status: str = ACTIVE
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 1

    def public(self) -> dict[str, object]:
        return {
            "site_id": self.site_id,
            "customer_id": self.customer_id,
            "xspe": self.xspe,
            "name": self.name,
            "domain": self.domain,
            "status": self.status,
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class Installation:
    installation_id: str
    app_id: str
    xspe: str
    customer_id: str | None  # None: installed for the whole SPE
    installed_at: float
    uninstalled_at: float | None = None

    @property
    def active(self) -> bool:
        return self.uninstalled_at is None


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    digest: str
    app_id: str
    installation_id: str
    customer_id: str
    xspe: str
    redirect_uri: str
    scope: str
    expires_at: float
    code_challenge: str | None = None
    used_at: float | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the server knows about an access or refresh token (never the value)."""

    digest: str
    kind: str  # "access" | "refresh"
    app_id: str
    scope: str
    expires_at: float
    installation_id: str | None = None  # None: app token
    customer_id: str | None = None
    xspe: str | None = None
    family_id: str | None = None
    revoked_at: float | None = None
    rotated_at: float | None = None
    successor: str | None = None  # digest of the refresh token that replaced this one
    created_at: float = 0.0
    family_expires_at: float | None = None  # end of the family's absolute lifetime (SPEC §8)

    @property
    def is_app_token(self) -> bool:
        return self.installation_id is None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


@dataclass(frozen=True, slots=True)
class Backing:
    """What a user token or code stands on (SPEC §8), as read from the database.

    ``app_status`` is None when the app is gone, ``installed`` is False when the
    installation is uninstalled or gone, ``customer_status`` is None when the
    customer is deleted (or no longer in that SPE), ``spe_exists`` says whether
    the SPE is still there. ``core.lifecycle`` decides what it means.
    """

    app_status: str | None
    installed: bool
    customer_status: str | None
    spe_exists: bool


def read_backing(states: Mapping[str, Any] | None) -> Backing:
    """The ``Backing`` of the four states a backend read for a user token or code (SPEC §8), by name;
    every backend builds it here, from a row of its query or from what it looked up.

    ``app_status``: the app's status, None when there is no such app; ``installed``: truthy when that
    installation is the app's and not uninstalled (SQL's ``1`` or NULL); ``customer_status``: the
    customer's status, None when there is no such customer in that SPE; ``spe_exists``: truthy when
    the SPE is there. ``states`` None (nothing read) backs nothing.
    """
    if states is None:
        return Backing(app_status=None, installed=False, customer_status=None, spe_exists=False)
    return Backing(
        app_status=states["app_status"],
        installed=bool(states["installed"]),
        customer_status=states["customer_status"],
        spe_exists=bool(states["spe_exists"]),
    )


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """Raw values handed to the client once; only their digests are stored."""

    access_token: str
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def result(self) -> dict[str, object]:
        body: dict[str, object] = {"access_token": self.access_token, "expires_in": self.expires_in}
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.scope is not None:
            body["scope"] = self.scope
        return body
