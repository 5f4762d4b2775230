"""What every core decision needs, in one object built once per process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

from typing_extensions import TypeVar

from openplatform.config import Settings
from openplatform.core.ratelimit import Limiter
from openplatform.core.store import AuditLog, Store
from openplatform.security import Keyring

# The storage a component uses (core/store.py): ``Platform[TokenStorage]`` is a platform whose
# store is read only for tokens. Covariant, so the wired ``Platform`` (of a whole ``Store``)
# goes wherever a narrower one is asked for; a bare ``Platform`` means ``Platform[Store]``, and
# ``Platform[object]`` one whose store is not used at all. Types only: the object is the same.
S = TypeVar("S", covariant=True, default=Store)


@dataclass
class Platform(Generic[S]):
    settings: Settings
    store: S
    keyring: Keyring
    limiter: Limiter
    clock: Callable[[], float] = field(default=time.time)

    def audit(self: Platform[AuditLog], event: str, **fields: object) -> None:
        self.store.audit(event, **fields)
