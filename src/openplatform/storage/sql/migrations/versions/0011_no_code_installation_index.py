"""no code installation index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:30:00

``auth_codes.installation_id`` loses its index, which no statement has read since the first
schema: a code is found by its digest, refused through SPEC §8's backing once its installation
ends, and swept by its expiry. Each code ``GET /oauth/connect`` issues entered it at its
installation's place, a page written long ago once codes are spread over many installations, as
the per-user token indexes of 0010 did (docs/benchmarks.md, "Many customers"). Nothing reads it,
so this needs no particular order of upgrade; downgrading recreates it.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_auth_codes_installation_id", "auth_codes")


def downgrade() -> None:
    op.create_index("ix_auth_codes_installation_id", "auth_codes", ["installation_id"], unique=False)
