"""The migrations build exactly the schema that schema.py describes, on both databases,
and downgrading the newest one and upgrading again leaves the same schema."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from openplatform.config import Settings
from openplatform.storage.sql import migrate
from openplatform.storage.sql.migrate import make_engine
from openplatform.storage.sql.schema import metadata

# The SQL schema's migrations.
pytestmark = pytest.mark.sql


async def schema_differences(settings: Settings) -> list[Any]:
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    finally:
        await engine.dispose()


async def index_names(settings: Settings, table: str) -> set[str]:
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: {i["name"] for i in sync.dialect.get_indexes(sync, table)})
    finally:
        await engine.dispose()


async def test_migrated_database_matches_schema(settings: Settings) -> None:
    assert await schema_differences(settings) == []
    assert await index_names(settings, "tokens") == {
        "ix_tokens_expires_at", "ix_tokens_installation_id", "ix_tokens_customer_id", "ix_tokens_family_id",
    }  # fmt: skip


async def test_newest_migration_goes_down_and_up_again(settings: Settings) -> None:
    head = migrate.head_revision()
    previous = f"{int(head) - 1:04d}"
    await asyncio.to_thread(_downgrade, settings, previous)
    differences = await schema_differences(settings)
    assert any("'admin_keys', Column('scope'" in str(d) for d in differences), differences  # 0007's column
    await asyncio.to_thread(migrate.upgrade, settings)
    assert await schema_differences(settings) == []


def _downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(migrate.alembic_config(settings), revision)
