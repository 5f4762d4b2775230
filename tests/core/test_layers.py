"""The layering of docs/architecture.md, kept honest (issue 11).

``core`` (the protocol: grants, tokens, policies) imports no web framework, no
database or Redis driver, and no storage, services or web module: it owns the
storage protocol it needs (``core/store.py``) and storage implements it.
Storage imports no web or services module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "openplatform"
FRAMEWORKS = ("starlette", "uvicorn", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "sqlite3", "redis", "httpx",
              "jinja2", "typer")  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "openplatform" and node.level == 0:
            found.update(f"openplatform.{alias.name}" for alias in node.names)  # from openplatform import events
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules_of(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("core", ("openplatform.storage", "openplatform.services", "openplatform.web", "openplatform.cli",
                  "openplatform.runtime", *FRAMEWORKS)),
        ("storage", ("openplatform.services", "openplatform.web", "openplatform.cli")),
    ],
)  # fmt: skip
def test_a_layer_imports_only_what_it_may(package: str, forbidden: tuple[str, ...]) -> None:
    offending = {
        f"{path.relative_to(SRC)}: {module}"
        for path in modules_of(package)
        for module in imported_modules(path)
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    }
    assert not offending, sorted(offending)


def test_no_storage_class_forwards_attributes_implicitly() -> None:
    """Every storage method the core calls is written out (no ``__getattr__`` pass-through)."""
    offending = [str(p.relative_to(SRC)) for p in modules_of("storage") if "def __getattr__" in p.read_text()]
    assert not offending, offending


def test_the_memory_backend_stands_on_the_core_alone() -> None:
    """``storage/memory/`` is the reference backend: it needs no database layer, and no module
    outside ``core``, the shared layer and its own package, so the core's rules (and the whole
    suite) can run without a database."""
    allowed = ("openplatform.core", "openplatform.config", "openplatform.errors", "openplatform.events",
               "openplatform.models", "openplatform.records", "openplatform.security",
               "openplatform.storage.memory")  # fmt: skip
    for path in sorted((SRC / "storage" / "memory").glob("*.py")):
        imported = imported_modules(path)
        ours = {m for m in imported if m == "openplatform" or m.startswith("openplatform.")}
        assert all(any(m == a or m.startswith(a + ".") for a in allowed) for m in ours), (path.name, sorted(ours))
        framework = {m for m in imported if any(m == f or m.startswith(f + ".") for f in FRAMEWORKS)}
        assert not framework, (path.name, sorted(framework))


def test_api_routes_are_declared_only_through_the_kernel() -> None:
    """Outside ``web/kernel.py`` and the screens (``web/ui/``), no module builds a Starlette route: every
    API route is a ``kernel.ApiRoute`` in the one table (issue 11), so a concern added to the kernel
    reaches every route, whichever way in (``tests/web/test_kernel.py`` checks the app itself)."""
    offending = [
        str(path.relative_to(SRC))
        for path in modules_of("web")
        if path.name != "kernel.py" and "ui" not in path.relative_to(SRC / "web").parts[:-1]
        and "starlette.routing" in imported_modules(path)
    ]  # fmt: skip
    assert not offending, offending


# storage/sql/ by domain: each domain module imports only the common modules, never another domain.
SQL_COMMON = {"driver", "sqlite", "postgres", "database", "changes", "rows", "schema", "migrate", "cleanup"}
SQL_DOMAINS = {
    "store": "tokens, codes and the hot path's reads (core/store.py's Backend)",
    "manage": "SPEs, customers, apps, secrets, installations, the audit log",
    "directory": "customers and sites of the Open APIs",
    "console": "the screens' reads and app edits",
    "accounts": "users and their sessions",
    "admin_keys": "admin keys",
    "webhooks": "the webhook outbox",
}


def test_storage_sql_domains_import_only_the_common_modules() -> None:
    """No sideways imports in ``storage/sql/``: what two domains share (the invalidation record,
    queueing a webhook, the database layer, row conversions) lives in a common module."""
    package = "openplatform.storage.sql."
    modules = {p.stem for p in (SRC / "storage" / "sql").glob("*.py") if p.stem != "__init__"}
    assert modules == SQL_COMMON | set(SQL_DOMAINS), "classify the new module: " + str(
        sorted(modules ^ (SQL_COMMON | set(SQL_DOMAINS)))
    )
    offending = set()
    for name in modules:
        ours = {m.removeprefix(package) for m in imported_modules(SRC / "storage" / "sql" / f"{name}.py")
                if m.startswith(package)}  # fmt: skip
        if name in SQL_DOMAINS:
            offending |= {f"{name} -> {m}" for m in ours if m not in SQL_COMMON}
        else:
            offending |= {f"{name} -> {m}" for m in ours if m in SQL_DOMAINS}
    assert not offending, sorted(offending)


def test_one_database_layer_per_process() -> None:
    """Serving runs the token store and the management path on one driver (``runtime.make_database``):
    a SQLAlchemy engine (a second pool, a second set of PRAGMAs) is made only for Alembic's migrations."""
    offending = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).as_posix() not in ("storage/sql/migrate.py", "storage/sql/migrations/env.py")
        and any(m.startswith("sqlalchemy.ext.asyncio") or m == "aiosqlite" for m in imported_modules(path))
        or "create_async_engine" in path.read_text()
        and path.name != "migrate.py"
    ]
    assert not offending, offending


def test_services_and_the_http_layer_import_no_backend() -> None:
    """The services type against their own protocols (``services/stores.py``) and the core's; which
    backend (``storage/sql/`` or ``storage/memory/``) stands behind them is chosen in ``runtime.py``.
    The HTTP layer may name the cache that follows the invalidation log, no backend."""
    offending = []
    for package, allowed in (("services", ()), ("web", ("openplatform.storage.cache",))):
        for path in modules_of(package):
            storage = {m for m in imported_modules(path) if m.startswith("openplatform.storage")}
            offending += [f"{path.relative_to(SRC)} -> {m}" for m in sorted(storage) if m not in allowed]
    assert not offending, offending
