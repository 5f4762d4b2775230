"""no per-user token indexes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:00:00

``tokens.installation_id`` and ``tokens.customer_id`` lose their (partial) indexes. Each user token
entered both at its installation's and its customer's place, a page written long ago once tokens
are spread over many customers: 71 % of a refresh rotation's WAL on SQLite (docs/benchmarks.md,
"Where issue 14 stands (2026-12-02)"). They served only the bulk revocation of an uninstall and of
a customer's deletion; those end the tokens through SPEC §8's backing, which every use of a user
token reads with it, so the tokens are no longer updated. Tokens revoked before this revision
keep their ``revoked_at``. Nodes of an older version check the backing too, so this needs no
particular order of upgrade; downgrading recreates the indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PER_USER = ("installation_id", "customer_id")


def upgrade() -> None:
    for column in PER_USER:
        op.drop_index(f"ix_tokens_{column}", "tokens")


def downgrade() -> None:
    for column in PER_USER:
        only_set = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_tokens_{column}", "tokens", [column], sqlite_where=only_set, postgresql_where=only_set)
