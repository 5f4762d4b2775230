"""SPEC §8: a token or code works only while everything behind it does.

A user token, its refresh token and an unused code stand on four things: the
app is active, the installation is not uninstalled, the customer is active
(not disabled, not deleted) and the SPE exists. This module is the one place
that decides it; every door asks it:

- ``GET /oauth/connect`` and the grants (code exchange, refresh) read the
  database (``fresh=True``; the grants read it in the same statement as the code
  or the refresh token, ``get_code_backed``/``get_token_backed``, and ask ``refusal``):
  they create tokens, so a cache that has not yet heard of an uninstall on
  another node must not let a new token through;
- introspection and the Open APIs read the process's cache of that state,
  which follows the invalidation log and Redis (revocation reaches every node
  within the bounds of SPEC §8: 1 s without Redis, 100 ms with it). A database
  read per Open API call would cost the token-checked GET about a third of its
  throughput (docs/benchmarks.md).

Whatever slips between a check and a write (an uninstall committing while a
refresh is in flight) is still refused at its next use, because every use
checks again, and a reinstall makes a new installation: tokens of the old one
never come back. Suspending an app or disabling a customer pauses its tokens;
resuming or enabling it again lets the unexpired ones work again.
"""

from __future__ import annotations

from typing import Protocol

from openplatform.core.context import Platform
from openplatform.core.store import BackingStorage
from openplatform.models import ACTIVE, Backing


class Bound(Protocol):
    """A code or a token record: what it was issued for."""

    @property
    def app_id(self) -> str: ...
    @property
    def installation_id(self) -> str | None: ...  # None: an app token
    @property
    def customer_id(self) -> str | None: ...
    @property
    def xspe(self) -> str | None: ...


def refusal(backing: Backing) -> str | None:
    """Why a token or code standing on ``backing`` no longer works (a sentence fragment), or None."""
    if backing.app_status is None:
        return "the app no longer exists"
    if backing.app_status != ACTIVE:
        return "the app is suspended"
    if not backing.installed:
        return "the app is no longer installed for this customer"
    if backing.customer_status is None:
        return "the customer no longer exists"
    if backing.customer_status != ACTIVE:
        return "the customer is disabled"
    if not backing.spe_exists:
        return "the SPE no longer exists"
    return None


async def unbacked(platform: Platform[BackingStorage], bound: Bound, *, fresh: bool) -> str | None:
    """Why ``bound`` (a code or a user token) no longer works, or None while everything behind it holds.

    ``fresh`` reads the database instead of this process's cache (one query).
    An app token stands on its app alone, which the caller has already loaded:
    for it this answers None.
    """
    if bound.installation_id is None:
        return None
    backing = await platform.store.backing(
        bound.app_id, bound.installation_id, bound.customer_id, bound.xspe, fresh=fresh
    )
    return refusal(backing)
