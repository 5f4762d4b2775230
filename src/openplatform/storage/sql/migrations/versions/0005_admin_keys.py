"""admin keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:55:00

SPEC §10: the credentials of operators' systems (admin API, /metrics), stored
only as a keyed digest; a key may be bound to one SPE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("xspe", sa.String(length=64), nullable=True),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["xspe"], ["spes.xspe"]),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("key_digest"),
    )


def downgrade() -> None:
    op.drop_table("admin_keys")
