"""The grant shape: a GRANT_TYPES tuple, ``validate()`` (reads only), ``issue()`` (writes)."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from openplatform.core.client_auth import ClientStorage
from openplatform.core.context import Platform
from openplatform.core.requests import TokenRequest
from openplatform.core.store import BackingStorage, CodeStorage, TokenStorage
from openplatform.models import IssuedTokens

Validated = TypeVar("Validated")


class GrantStorage(ClientStorage, BackingStorage, CodeStorage, TokenStorage, Protocol):
    """What the grants together use (each grant's own protocol names its part)."""


class Grant(Protocol[Validated]):
    @property
    def GRANT_TYPES(self) -> tuple[str, ...]: ...  # noqa: N802 - a constant on each grant class

    async def validate(self, platform: Platform[GrantStorage], request: TokenRequest) -> Validated: ...
    async def issue(
        self, platform: Platform[GrantStorage], request: TokenRequest, validated: Validated
    ) -> IssuedTokens: ...


AnyGrant = Grant[Any]
