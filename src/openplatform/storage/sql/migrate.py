"""`openplatform db upgrade`: Alembic migrations, configured in code (no alembic.ini).

Convention: a migration file is named ``NNNN_description.py`` and its revision id
is ``NNNN``, so the head revision is known from the file names alone. That lets
every CLI command check "is the schema current?" with one small query instead
of loading Alembic (which costs most of a short command's run time).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from openplatform.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"sqlite+aiosqlite:///{settings.sqlite_path}"
    return "postgresql+asyncpg://" + settings.database_url.split("://", 1)[1]


def make_engine(settings: Settings) -> AsyncEngine:
    """A SQLAlchemy engine for Alembic alone: it lives for one migration run (``ensure_schema``
    before serving, ``openplatform db upgrade``) and is disposed of. Serving, the token store and
    the management path share one driver (``runtime.make_database``)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(sqlalchemy_url(settings))
    if settings.is_sqlite:
        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


def alembic_config(settings: Settings):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run on every start."""
    from alembic import command

    command.upgrade(alembic_config(settings), revision)


def head_revision() -> str:
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def current_revision(settings: Settings) -> str | None:
    """The database's revision, or None when it has no schema yet (or cannot say)."""
    if settings.is_sqlite:
        if not Path(settings.sqlite_path).exists():
            return None
        with sqlite3.connect(settings.sqlite_path) as conn:
            try:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:
                return None
        return str(row[0]) if row else None
    return asyncio.run(_pg_revision(settings.postgres_dsn))


async def _pg_revision(dsn: str) -> str | None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT version_num FROM alembic_version")  # type: ignore[no-any-return]
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


def ensure_schema(settings: Settings) -> None:
    """Upgrade only when the database is behind (the common case costs one query)."""
    if current_revision(settings) != head_revision():
        upgrade(settings)


def revision(settings: Settings, message: str) -> None:
    """Developer helper: autogenerate a migration from schema.py."""
    from alembic import command

    command.revision(alembic_config(settings), message=message, autogenerate=True)
