"""The in-memory backend: every storage protocol (``core/store.py``, ``services/stores.py``) in one process.

``store.MemoryStore`` holds every table (as model objects) and implements the core's
protocols; the management side's modules (``manage``, ``directory``, ``console``,
``accounts``, ``admin_keys``, ``webhooks``) read and write the same tables. Nothing
survives the process: it serves tests (the whole suite runs on it, as on SQLite and
PostgreSQL) and ``create_app(Settings(database_url="memory://"))``: the whole platform inside one
Python process, as an app developer's tests run it (docs/sdk.md); no ``openplatform`` command takes it.
"""

from openplatform.storage.memory.store import AuditEvent, MemoryStore

__all__ = ["AuditEvent", "MemoryStore"]
