"""The migrations build exactly the schema that schema.py describes, on both databases,
and downgrading the newest one and upgrading again leaves the same schema."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa
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


async def storage_parameters(settings: Settings) -> dict[str, dict[str, str]]:
    """PostgreSQL's storage parameters (``WITH (…)``) of each table that has any; Alembic's
    comparison leaves them out."""
    if settings.is_sqlite:
        return {}
    import asyncpg

    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT relname, reloptions FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind = 'r' AND reloptions IS NOT NULL"
        )
    finally:
        await conn.close()
    return {row["relname"]: dict(option.split("=", 1) for option in row["reloptions"]) for row in rows}


def schema_storage_parameters(settings: Settings) -> dict[str, dict[str, str]]:
    if settings.is_sqlite:
        return {}
    return {
        table.name: {name: str(value) for name, value in options.items()}
        for table in metadata.sorted_tables
        if (options := table.dialect_options["postgresql"]["with"])
    }


async def test_migrated_database_matches_schema(settings: Settings) -> None:
    assert await schema_differences(settings) == []
    # family_id unindexed since 0009 (a family's revocation is a row of revoked_families), installation_id
    # and customer_id since 0010 (an uninstall or a deleted customer ends the tokens through their backing)
    assert await index_names(settings, "tokens") == {"ix_tokens_expires_at"}
    # nothing finds a code by its installation (0011): by its digest, and its expiry for the sweep
    assert await index_names(settings, "auth_codes") == {"ix_auth_codes_expires_at"}
    assert await storage_parameters(settings) == schema_storage_parameters(settings)
    if not settings.is_sqlite:  # room for the hot path's updates in place (schema.py, migration 0008)
        assert schema_storage_parameters(settings) == {
            "auth_codes": {"fillfactor": "45"}, "tokens": {"fillfactor": "70"},
        }  # fmt: skip


def differences(found: list[Any]) -> set[tuple[str, str | None]]:
    """Alembic's differences as (kind, name): an index's and a table's."""
    return {(kind, getattr(item, "name", None)) for kind, item in (d if isinstance(d, tuple) else d[0] for d in found)}


async def test_newest_migrations_go_down_and_up_again(settings: Settings) -> None:
    """0011 down: the code installation index back. 0010 down: the per-user token indexes back.
    0009 down: the family index back, revoked_families gone, and a family revoked as a row written
    back into its tokens (nothing revoked comes back to life). Up again: the schema."""
    assert migrate.head_revision() == "0011"
    await asyncio.to_thread(_downgrade, settings, "0010")
    assert differences(await schema_differences(settings)) == {("remove_index", "ix_auth_codes_installation_id")}
    await asyncio.to_thread(_downgrade, settings, "0009")
    assert differences(await schema_differences(settings)) == {
        ("remove_index", "ix_auth_codes_installation_id"),
        ("remove_index", "ix_tokens_installation_id"), ("remove_index", "ix_tokens_customer_id"),
    }  # fmt: skip
    previous = "0008"
    now = time.time()
    await execute(settings,
        "INSERT INTO tokens (digest, kind, app_id, scope, family_id, created_at, expires_at) VALUES "
        f"('t1', 'refresh', 'a', 's', 'fam', {now}, {now + 60}), "
        f"('t2', 'access', 'a', 's', 'other', {now}, {now + 60})",
        f"INSERT INTO revoked_families (family_id, revoked_at, expires_at) VALUES ('fam', {now - 1}, {now + 60})",
    )  # fmt: skip
    await asyncio.to_thread(_downgrade, settings, previous)
    assert differences(await schema_differences(settings)) == {
        ("add_table", "revoked_families"), ("add_index", "ix_revoked_families_expires_at"),
        ("remove_index", "ix_tokens_family_id"), ("remove_index", "ix_tokens_installation_id"),
        ("remove_index", "ix_tokens_customer_id"), ("remove_index", "ix_auth_codes_installation_id"),
    }  # fmt: skip
    assert await storage_parameters(settings) == schema_storage_parameters(settings)  # 0008's stay
    assert await fetch(settings, "SELECT digest, revoked_at FROM tokens ORDER BY digest") == [
        ("t1", pytest.approx(now - 1)), ("t2", None),
    ]  # fmt: skip
    await asyncio.to_thread(migrate.upgrade, settings)
    assert await schema_differences(settings) == []
    assert await storage_parameters(settings) == schema_storage_parameters(settings)


async def execute(settings: Settings, *statements: str) -> None:
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def fetch(settings: Settings, statement: str) -> list[tuple[Any, ...]]:
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(sa.text(statement))]
    finally:
        await engine.dispose()


def _downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(migrate.alembic_config(settings), revision)
