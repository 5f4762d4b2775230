"""room for updates in place

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:00:00

PostgreSQL only (SQLite has no fillfactor): ``auth_codes`` and ``tokens`` leave room on
each page for the new versions of the rows the hot path updates (a code's claim, a refresh
token's rotation), so those UPDATEs, which change no indexed column, are HOT and write no
index entry (schema.py, issue 14). Pages written before keep their fill; the room applies to
pages filled from now on.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FILLFACTORS = {"auth_codes": 45, "tokens": 70}  # schema.py's CODES_FILLFACTOR, TOKENS_FILLFACTOR


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, fillfactor in FILLFACTORS.items():
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in FILLFACTORS:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
