"""audit activity indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:30:00

The console's app page (issue 13 item 9) charts an app's grants per hour and per day
and lists its newest events, optionally of one kind. ``ix_audit_events_app_event_at``
gains ``occurrences``, so the per-bucket sums read the index alone, and
``ix_audit_events_app_at`` (app_id, at) gives the newest events of every kind without
sorting all of the app's rows. Measured on 200,000 audit rows: docs/benchmarks.md.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_app_event_at")
        batch_op.create_index("ix_audit_events_app_event_at", ["app_id", "event", "at", "occurrences"], unique=False)
        batch_op.create_index("ix_audit_events_app_at", ["app_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_app_at")
        batch_op.drop_index("ix_audit_events_app_event_at")
        batch_op.create_index("ix_audit_events_app_event_at", ["app_id", "event", "at"], unique=False)
