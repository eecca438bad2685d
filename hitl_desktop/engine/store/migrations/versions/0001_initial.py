"""The initial store: runs, steps, tokens and their tags, the event log, engines, blobs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hitl_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("idempotency_key", sa.String(400), unique=True),
        sa.Column("idempotency_expires_at", sa.Float),
        sa.Column("owner", sa.String(40)),
        sa.Column("waiting_token_id", sa.String(40)),
        sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("code_hash", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
    )
    op.create_index("ix_hitl_runs_status_created", "hitl_runs", ["status", "created_at"])
    op.create_index("ix_hitl_runs_created", "hitl_runs", ["created_at"])
    op.create_index("ix_hitl_runs_waiting_token", "hitl_runs", ["waiting_token_id"])
    op.create_table(
        "hitl_steps",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("ok", sa.Integer, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
    )
    op.create_table(
        "hitl_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("output", sa.Text),
        sa.Column("idempotency_key", sa.String(400), unique=True),
        sa.Column("idempotency_expires_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("completed_at", sa.Float),
    )
    op.create_index("ix_hitl_tokens_status_expires", "hitl_tokens", ["status", "expires_at"])
    op.create_index("ix_hitl_tokens_run", "hitl_tokens", ["run_id"])
    op.create_table(
        "hitl_token_tags",
        sa.Column("tag", sa.String(200), primary_key=True),
        sa.Column("token_id", sa.String(40), primary_key=True),
    )
    op.create_table(
        "hitl_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("origin", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("token_id", sa.String(40)),
        sa.Column("data", sa.Text),
    )
    op.create_table(
        "hitl_engines",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("proc_start", sa.String(40)),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float),
    )
    op.create_table(
        "hitl_blobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "hitl_blobs",
        "hitl_engines",
        "hitl_events",
        "hitl_token_tags",
        "hitl_tokens",
        "hitl_steps",
        "hitl_runs",
    ):
        op.drop_table(table)
