"""What every core decision needs, in one object built once per process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from openplatform.config import Settings
from openplatform.core.ratelimit import Limiter
from openplatform.core.store import Store
from openplatform.security import Keyring


@dataclass
class Platform:
    settings: Settings
    store: Store
    keyring: Keyring
    limiter: Limiter
    clock: Callable[[], float] = field(default=time.time)

    def audit(self, event: str, **fields: object) -> None:
        self.store.audit(event, **fields)
