"""token lifecycle

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:00:00

SPEC §8: refresh families get an absolute lifetime. Every token of a family
carries the family's end (``family_expires_at``), set at the code exchange and
copied on each rotation, so a rotation can never extend it. Tokens issued
before this revision have none and keep their own expiry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family_expires_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("family_expires_at")
