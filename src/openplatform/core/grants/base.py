"""The grant shape: a GRANT_TYPES tuple, ``validate()`` (reads only), ``issue()`` (writes)."""

from __future__ import annotations

from typing import Any, Protocol

from openplatform.core.context import Platform
from openplatform.core.requests import TokenRequest
from openplatform.models import IssuedTokens


class Grant(Protocol):
    GRANT_TYPES: tuple[str, ...]

    async def validate(self, platform: Platform, request: TokenRequest) -> Any: ...
    async def issue(self, platform: Platform, request: TokenRequest, validated: Any) -> IssuedTokens: ...
