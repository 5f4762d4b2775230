"""The objects of SPEC §1 as plain frozen dataclasses shared by core, storage and web."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

# Scopes an app may register (SPEC §2.5). install_login is implied by installation.
INSTALL_LOGIN = "install_login"
REGISTRABLE_SCOPES = ("customer:read", "customer:write", "site:read", "site:write")
KNOWN_SCOPES = (INSTALL_LOGIN, *REGISTRABLE_SCOPES)

ACTIVE = "active"
SUSPENDED = "suspended"

_Record = TypeVar("_Record", bound=type)


def slot_init(cls: _Record) -> _Record:
    """Give a frozen, slotted dataclass an ``__init__`` of the same signature that sets each slot
    through its member descriptor (``TokenRecord.digest.__set__``), bound once here.

    Frozen, dataclass's own ``__init__`` calls ``object.__setattr__(self, name, value)`` per field,
    which looks the name up on the type each time: building a ``TokenRecord`` took about 23,800
    instructions, and 14,300 this way (callgrind; docs/benchmarks.md, "Records and limits
    (issue 14)"). The token endpoints build several records per request. Everything else stays
    dataclass's: assignment still raises ``FrozenInstanceError``, and ``__eq__``, ``__hash__``,
    ``__repr__``, ``dataclasses.replace`` and mypy's view of the constructor are unchanged.
    Apply it over ``@dataclass(frozen=True, slots=True)``; fields with a ``default_factory``, a
    ``kw_only`` or ``init=False`` field, or a ``__post_init__``, are not handled (refused here).
    """
    fields = dataclasses.fields(cls)
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: slot_init needs a slotted dataclass without __post_init__")
    # dataclasses.fields() leaves InitVar (and ClassVar) pseudo-fields out; __dataclass_fields__ has them.
    if set(vars(cls)["__dataclass_fields__"]) != {f.name for f in fields} or any(
        f.name not in cls.__dict__ for f in fields
    ):
        raise TypeError(f"{cls.__name__}: slot_init takes the class's own fields only, no InitVar or inherited field")
    namespace: dict[str, Any] = {"__name__": cls.__module__}
    params, body = ["self"], []
    for f in fields:
        if f.default_factory is not dataclasses.MISSING or f.kw_only or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: slot_init takes plain fields with plain defaults")
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})\n")
    source = f"def __init__({', '.join(params)}) -> None:\n" + "".join(body)
    exec(source, namespace)  # noqa: S102 - from the class's own field names, as dataclasses makes its __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)  # type: ignore[misc]
    cls.__init__ = init  # type: ignore[misc]
    return cls


@slot_init
@dataclass(frozen=True, slots=True)
class AppSecret:
    secret_hash: str
    expires_at: float | None  # None: current secret; a time: old secret in its grace period


@slot_init
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


@slot_init
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


class Installations(tuple[Installation, ...]):
    """An app's live installations (``AppStorage.active_installations``) with the sets an Open API
    call asks of them, built once per read and shared by every call the cache serves:
    ``spe_wide`` (the SPEs of its SPE-wide installations), ``customers`` (the customers of its
    one-customer installations), ``xspes`` (every SPE it is installed at). An app token's reach is
    then two set lookups: ``Access.can_see`` walked the installations on every call, up to all of
    them for an app installed customer by customer (docs/benchmarks.md, "Many customers")."""

    spe_wide: frozenset[str]
    customers: frozenset[str]
    xspes: frozenset[str]

    def __new__(cls, items: Iterable[Installation] = ()) -> Installations:
        self = super().__new__(cls, items)
        self.spe_wide = frozenset(i.xspe for i in self if i.customer_id is None)
        self.customers = frozenset(i.customer_id for i in self if i.customer_id is not None)
        self.xspes = frozenset(i.xspe for i in self)
        return self


@slot_init
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


@slot_init
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


@slot_init
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


NO_BACKING = Backing(app_status=None, installed=False, customer_status=None, spe_exists=False)
LIVE_BACKING = Backing(app_status=ACTIVE, installed=True, customer_status=ACTIVE, spe_exists=True)


def backing_of(app_status: str | None, installed: object, customer_status: str | None, spe_exists: object) -> Backing:
    """The ``Backing`` of four states as read (``installed`` and ``spe_exists`` truthy or not, SQL's ``1`` or
    NULL): ``LIVE_BACKING`` when all four are live, as nearly every code and token read finds them (a
    record is immutable, so one serves every read: building one cost about 4,500 instructions, callgrind;
    docs/benchmarks.md, "The exchange and the rotation, third pass"), else a record of its own."""
    if app_status == ACTIVE and installed and customer_status == ACTIVE and spe_exists:
        return LIVE_BACKING
    return Backing(app_status, bool(installed), customer_status, bool(spe_exists))


def read_backing(states: Mapping[str, Any] | None) -> Backing:
    """The ``Backing`` of the four states a backend read for a user token or code (SPEC §8), by name:
    the memory backend's lookups and the SQL store's backing read alone; the SQL store's reads of a
    code or token with its backing unpack their rows by position instead (``SqlStore.get_*_backed``).

    ``app_status``: the app's status, None when there is no such app; ``installed``: truthy when that
    installation is the app's and not uninstalled (SQL's ``1`` or NULL); ``customer_status``: the
    customer's status, None when there is no such customer in that SPE; ``spe_exists``: truthy when
    the SPE is there. ``states`` None (nothing read) backs nothing.
    """
    if states is None:
        return NO_BACKING
    return backing_of(states["app_status"], states["installed"], states["customer_status"], states["spe_exists"])


@slot_init
@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """Raw values handed to the client once; only their digests are stored."""

    access_token: str
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None

    def result(self) -> dict[str, object]:
        body: dict[str, object] = {"access_token": self.access_token, "expires_in": self.expires_in}
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.scope is not None:
            body["scope"] = self.scope
        return body
