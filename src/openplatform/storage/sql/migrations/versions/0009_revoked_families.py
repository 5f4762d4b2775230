"""a family revoked by one row

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:00:00

A revoked token family (a replayed code, a reused or revoked refresh token) becomes one row of
``revoked_families``, and ``tokens.family_id`` loses its index: every rotation wrote its pair's
two entries into it at the family's place, a page written long ago (schema.py, docs/benchmarks.md
"A family revoked by one row"). Families revoked before this revision had every token updated;
those tokens keep their ``revoked_at``. Downgrading writes each revoked family's time back into
its tokens' ``revoked_at`` before the table goes, so that nothing revoked comes back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revoked_families",
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("family_id"),
    )
    op.create_index("ix_revoked_families_expires_at", "revoked_families", ["expires_at"], unique=False)
    op.drop_index("ix_tokens_family_id", "tokens")


def downgrade() -> None:
    only_set = sa.text("family_id IS NOT NULL")
    op.create_index("ix_tokens_family_id", "tokens", ["family_id"], sqlite_where=only_set, postgresql_where=only_set)
    op.execute(
        "UPDATE tokens SET revoked_at = (SELECT f.revoked_at FROM revoked_families AS f "
        "WHERE f.family_id = tokens.family_id) WHERE revoked_at IS NULL AND family_id IN "
        "(SELECT family_id FROM revoked_families)"
    )
    op.drop_index("ix_revoked_families_expires_at", "revoked_families")
    op.drop_table("revoked_families")
