"""admin key scope and last use

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 03:00:00

Issue 10's attacker review: the key Prometheus scrapes ``/metrics`` with no longer has to
be a key of the whole admin API. ``scope`` is ``admin`` (every key made before: the admin
API and ``/metrics``) or ``metrics`` (``admin-key create --metrics-only``: ``/metrics``
only). ``last_used_at`` is shown by ``admin-key list``; it is written together with the
coalesced ``admin_key.used`` audit event, at most once a minute per key and process.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=16), server_default="admin", nullable=False))
        batch_op.add_column(sa.Column("last_used_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("scope")
