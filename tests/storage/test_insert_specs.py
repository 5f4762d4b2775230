"""The writers batch INSERTs from what each one declares (``driver.InsertSpec``: table, columns,
PostgreSQL types, conflict clause), never from its SQL text; those declarations must match the
schema the migrations build (``schema.py``), which the drivers do not import."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Float, Integer, LargeBinary, String, Text

from openplatform.models import TokenRecord
from openplatform.storage.sql import store
from openplatform.storage.sql.driver import InsertSpec, Sql
from openplatform.storage.sql.schema import metadata

SQL = Path(store.__file__).parent
SPECS = {name: value for name, value in vars(store).items() if isinstance(value, InsertSpec)}


def pg_type(column_type: object) -> str:
    for kind, name in ((BigInteger, "int8"), (Integer, "int4"), (Float, "float8"), (LargeBinary, "bytea"),
                       (String, "text"), (Text, "text")):  # fmt: skip
        if isinstance(column_type, kind):
            return name
    raise AssertionError(f"no PostgreSQL array type for {column_type!r}")


def test_the_hot_path_declares_its_inserts() -> None:
    assert set(SPECS) == {
        "INSERT_TOKEN",
        "INSERT_APP_TOKEN",
        "INSERT_ISSUED_TOKEN",
        "INSERT_CODE",
        "INSERT_AUDIT",
        "INSERT_INVALIDATION",
    }


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_spec_names_real_columns_with_their_types(name: str) -> None:
    spec = SPECS[name]
    table = metadata.tables[spec.table]
    assert all(column in table.c for column in spec.columns), spec.columns
    # int4 for an int8 column of SQLite's variant would still be wrong on PostgreSQL: compare there
    declared = {c: pg_type(table.c[c].type.dialect_impl(_postgres())) for c in spec.columns}
    assert dict(zip(spec.columns, spec.pg_types, strict=True)) == declared
    assert spec.sql.startswith(f"INSERT INTO {spec.table} (") and spec.sql.count("?") == len(spec.columns)
    fields = ", ".join(f"r->>{i}" if t == "text" else f"(r->>{i})::{t}" for i, t in enumerate(spec.pg_types))
    assert spec.from_json(3) == f"{spec.head} SELECT {fields} FROM jsonb_array_elements($3::jsonb) AS r"


def test_a_conflict_clause_ends_both_statements() -> None:
    spec = InsertSpec("invalidations", (("at", "float8"), ("kind", "text"), ("key", "text")), "ON CONFLICT DO NOTHING")
    assert spec.sql.endswith("VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
    assert spec.from_json(1).endswith(
        "SELECT (r->>0)::float8, r->>1, r->>2 FROM jsonb_array_elements($1::jsonb) AS r ON CONFLICT DO NOTHING"
    )


def test_a_column_json_cannot_carry_exactly_is_refused() -> None:
    """The PostgreSQL writer sends many rows as one JSON parameter (``InsertSpec.from_json``): bytes
    have no JSON form, so a spec with a bytea column is refused where it is declared."""
    with pytest.raises(ValueError, match="column type"):
        InsertSpec("webhook_deliveries", (("id", "text"), ("body", "bytea")))


async def test_rows_sent_as_json_arrive_exactly(pg_database: str) -> None:
    """What the PostgreSQL writer's batched INSERT stores is what the rows held, value for value:
    floats to the last bit, NULLs, quotes, backslashes, JSON escapes and characters beyond the
    BMP, the int4 bounds; each spec's rows through one chained statement, as a batch sends them."""
    import asyncpg

    from openplatform.storage.sql.postgres import _chained_inserts

    awkward = ['"quoted" \\ back\\slash', "line\nbreak\ttab", "\u00e9\u4e2d\U0001f600", "</script>", "", "null"]
    floats = [1764541283.1234567, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, 1e-7, 2.0**53 + 1]
    codes = [
        (f"json-{n:04d}", awkward[n % len(awkward)], "ins_x", "cus_x", awkward[-n % len(awkward)],
         "http://localhost/cb?a=1&b=%22", "install_login", None if n % 3 else awkward[n % 4], floats[n % len(floats)])
        for n in range(len(awkward) * len(floats))
    ]  # fmt: skip
    audits = [(floats[n % len(floats)], "token.issued", "app", None, "cus", "127.0.0.1", awkward[n % len(awkward)],
               (2**31 - 1, -(2**31), 0)[n % 3]) for n in range(9)]  # fmt: skip
    conn = await asyncpg.connect(pg_database)
    try:
        async with conn.transaction():
            for table in ("auth_codes", "audit_events"):
                await conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP")
            await conn.execute(*_chained_inserts({store.INSERT_CODE: codes, store.INSERT_AUDIT: audits}))
            read = "SELECT {} FROM pg_temp.{} ORDER BY {}"
            stored = await conn.fetch(read.format(", ".join(store.INSERT_CODE.columns), "auth_codes", "digest"))
            logged = await conn.fetch(read.format(", ".join(store.INSERT_AUDIT.columns), "audit_events", "id"))
    finally:
        await conn.close()
    assert [tuple(row) for row in stored] == codes
    assert [repr(value) for row in stored for value in row] == [repr(value) for row in codes for value in row]
    assert [tuple(row) for row in logged] == audits


def test_no_driver_reads_sql_text_or_imports_the_schema() -> None:
    """What made the old PostgreSQL writer fragile: a regex over statements and a run-time schema import."""
    for name in ("driver.py", "postgres.py", "sqlite.py", "store.py"):
        tree = ast.parse((SQL / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert "openplatform.storage.sql.schema" not in imported, name
        calls = {node.func.attr for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}  # fmt: skip
        assert not calls & {"startswith", "findall", "match"}, (name, calls)


def _postgres():  # type: ignore[no-untyped-def]
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    return PGDialect_asyncpg()


def test_each_hot_path_statement_names_the_tables_it_touches() -> None:
    """The PostgreSQL writer keeps held rows of other tables back past an ``Sql`` statement: a table
    it touches but does not name would be read before its held rows reach it."""
    statements = [value for value in vars(store).values() if isinstance(value, Sql)]
    statements += [store.ConsumeCode.claim_many, store.RotateRefresh.claim_many]  # type: ignore[list-item]
    assert len(statements) >= 7
    for statement in statements:
        named = {t for t in metadata.tables if re.search(rf"\b{t}\b", statement)}
        assert statement.tables == named, statement


def _with(field: dataclasses.Field[Any], record: TokenRecord) -> TokenRecord:
    value: object = 1.5 if "float" in str(field.type) else "x"
    return dataclasses.replace(record, **{field.name: value})


def test_every_token_field_an_app_token_row_leaves_out_is_checked() -> None:
    """``INSERT_APP_TOKEN`` names six columns; an app token with any other field of ``TokenRecord`` set
    (a field added later included) must go through the full INSERT, never lose the value (the review)."""
    app_token = TokenRecord("d" * 64, "access", "a" * 32, "s", 2.0, created_at=1.0)
    assert store._only_app_columns(app_token)
    for field in dataclasses.fields(TokenRecord):
        if field.name not in store.INSERT_APP_TOKEN.columns:
            assert not store._only_app_columns(_with(field, app_token)), field.name


def test_every_token_field_an_issued_row_leaves_out_is_checked() -> None:
    user_token = TokenRecord("d" * 64, "access", "a" * 32, "s", 2.0, installation_id="i", customer_id="c",
                             xspe="x", family_id="f", created_at=1.0, family_expires_at=3.0)  # fmt: skip
    assert store.token_rows((user_token,))[0] is store.INSERT_ISSUED_TOKEN
    for field in dataclasses.fields(TokenRecord):
        if field.name not in store.INSERT_ISSUED_TOKEN.columns:
            assert store.token_rows((_with(field, user_token),))[0] is store.INSERT_TOKEN, field.name
    assert set(store.INSERT_TOKEN.columns) == {f.name for f in dataclasses.fields(TokenRecord)}
