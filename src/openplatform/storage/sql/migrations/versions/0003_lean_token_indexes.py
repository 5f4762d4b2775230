"""lean token indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 03:00:00

The token and audit indexes a grant writes to, trimmed for the hot path (see
schema.py): per-user token indexes become partial (app tokens skip them), a
customer's tokens get one (deleting a customer revoked them by a full scan),
tokens.app_id goes, and the audit log's two single-column indexes become one
(app_id, event, at), which the console's token statistics now read. Audit
rows get an occurrences count: identical events of one group commit are one row.

New tokens and codes start with their issue time, and so do their stored keys
(security.Keyring.mint); tokens issued before this revision are still found
under their old keys (core.tokens.find_token).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PARTIAL = ("installation_id", "customer_id", "family_id")


def upgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_tokens_app_id")
        batch_op.drop_index("ix_tokens_installation_id")
        batch_op.drop_index("ix_tokens_family_id")
    for column in PARTIAL:
        only_set = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_tokens_{column}", "tokens", [column], sqlite_where=only_set, postgresql_where=only_set)
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False))
        batch_op.drop_index("ix_audit_events_at")
        batch_op.drop_index("ix_audit_events_app_id")
        batch_op.create_index("ix_audit_events_app_event_at", ["app_id", "event", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_app_event_at")
        batch_op.create_index("ix_audit_events_app_id", ["app_id"], unique=False)
        batch_op.create_index("ix_audit_events_at", ["at"], unique=False)
        batch_op.drop_column("occurrences")
    for column in PARTIAL:
        op.drop_index(f"ix_tokens_{column}", "tokens")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index("ix_tokens_installation_id", ["installation_id"], unique=False)
        batch_op.create_index("ix_tokens_family_id", ["family_id"], unique=False)
        batch_op.create_index("ix_tokens_app_id", ["app_id"], unique=False)
