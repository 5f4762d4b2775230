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
    """``storage/memory.py`` is the reference backend: it needs no database layer, and no module
    outside ``core`` and the shared layer, so the core's rules can be tested without a database."""
    allowed = ("openplatform.core", "openplatform.config", "openplatform.errors", "openplatform.events",
               "openplatform.models", "openplatform.security")  # fmt: skip
    imported = imported_modules(SRC / "storage" / "memory.py")
    ours = {m for m in imported if m == "openplatform" or m.startswith("openplatform.")}
    assert ours and all(any(m == a or m.startswith(a + ".") for a in allowed) for m in ours), sorted(ours)
    assert not {m for m in imported if any(m == f or m.startswith(f + ".") for f in FRAMEWORKS)}, sorted(imported)
