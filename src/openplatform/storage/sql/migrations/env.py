"""Alembic environment: runs migrations on the configured database (async drivers)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from openplatform.storage.sql.migrate import make_engine
from openplatform.storage.sql.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Nodes starting together must not migrate at the same time.
            connection.execute(text("SELECT pg_advisory_xact_lock(727283601)"))
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(config.attributes["settings"])
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_run_async())
