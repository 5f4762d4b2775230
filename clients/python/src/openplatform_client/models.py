"""Typed results of the SDK: tokens, Open API objects, pages, launches and webhook events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Token:
    """An access token as the SDK keeps it.

    ``expires_at`` is the app's own clock at the moment the request was sent plus
    ``expires_in``, so it errs on the early side. A user token has a
    ``refresh_token`` and the customer it belongs to; an app token has neither.
    """

    access_token: str
    expires_in: int
    expires_at: float
    refresh_token: str | None = None
    scope: str | None = None
    customer_id: str | None = None
    xspe: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset((self.scope or "").split())

    def due(self, now: float, margin: float) -> bool:
        """True once the token is within its refresh margin of expiry (or past it).

        The margin is capped at a quarter of the lifetime so short-lived tokens
        (a server with ``ACCESS_TOKEN_TTL=60``) are still used most of their life.
        """
        return now >= self.expires_at - min(margin, self.expires_in / 4)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form, for token stores that persist outside the process."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]

    def __str__(self) -> str:
        """The bearer value, so a Token can go straight into a header or a query string.

        ``repr()`` (what debuggers and ``%r`` show) never includes it; avoid ``%s`` of a
        Token in logs.
        """
        return self.access_token

    def __repr__(self) -> str:  # never print token values into logs
        return f"Token(customer_id={self.customer_id!r}, scope={self.scope!r}, expires_at={self.expires_at:.0f})"


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    xspe: str
    name: str
    contact: str = ""
    status: str = "active"
    created_at: int = 0
    updated_at: int = 0
    version: int = 1

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Customer:
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    customer_id: str
    name: str
    domain: str
    xspe: str = ""
    status: str = "active"
    created_at: int = 0
    updated_at: int = 0
    version: int = 1

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Site:
        return cls(**_known(cls, data))


def _known(cls: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """The members of an API object this SDK knows (newer servers may add more)."""
    return {k: v for k, v in data.items() if k in cls.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list answer: ``{"items", "total", "page", "page_size"}``."""

    items: list[T]
    total: int
    page: int
    page_size: int
    xspe: str | None = None

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.total and bool(self.items)

    @classmethod
    def parser(cls, item: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], Page[T]]:
        def parse(result: Any) -> Page[T]:
            return cls(
                items=[item(obj) for obj in result.get("items", [])],
                total=int(result.get("total", 0)),
                page=int(result.get("page", 1)),
                page_size=int(result.get("page_size", 0)),
                xspe=result.get("xspe"),
            )

        return parse


@dataclass(frozen=True, slots=True)
class Launch:
    """A verified signed launch (SPEC §3): who opened the app. ``customer_id`` is None
    when an SPE admin opened an app installed for the whole SPE."""

    app_id: str
    xspe: str
    customer_id: str | None
    timestamp: int


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """An install (type 1) or uninstall (type 2) notification, after verification.

    ``customer_id`` is None for an installation for a whole SPE (``xspe`` says which);
    ``event_id`` is the same on every retry of one event, to drop duplicates.
    Times are UNIX milliseconds, as in the original platform's format.
    """

    type: int
    customer_id: str | None
    action_time: int
    expiration_time: int
    app_id: str | None = None
    xspe: str | None = None
    event_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def installed(self) -> bool:
        return self.type == 1

    @property
    def uninstalled(self) -> bool:
        return self.type == 2
