"""Fewer, partial indexes; steps clustered by run.

Every index a commit touches is one more page written to the WAL and synced, so the indexes
now cover only the rows their queries look for:

* runs: `(status, created_at)` only for live runs (QUEUED, EXECUTING, WAITING: the ones whose
  finished_at is NULL) instead of all;
  `waiting_token_id` only where set; the idempotency key unique only where set (a unique
  index on the column held an entry for every run's NULL).
* tokens: the deadline index `(expires_at)` only for WAITING tokens instead of
  `(status, expires_at)` for all; the idempotency key unique only where set.
* steps (SQLite): a WITHOUT ROWID table keyed by (run_id, position): one b-tree instead of a
  table plus its primary-key index.

SQLite cannot drop a table's UNIQUE constraint or change its rowid layout in place: runs,
tokens and steps are rebuilt (Alembic's batch mode: copy, drop, rename), which keeps every row.

Revision ID: 0002
Revises: 0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LIVE_RUN = "finished_at IS NULL"  # unfinished: every change to a finished status sets it
WAITING_TOKEN = "status = 'WAITING'"
SET_KEY = "idempotency_key IS NOT NULL"


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def _runs(unique_key: bool) -> sa.Table:
    """hitl_runs as of 0001 (unique_key) or 0002, without its indexes."""
    return sa.Table(
        "hitl_runs",
        sa.MetaData(),
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("idempotency_key", sa.String(400), unique=unique_key),
        sa.Column("idempotency_expires_at", sa.Float),
        sa.Column("owner", sa.String(40)),
        sa.Column("waiting_token_id", sa.String(40)),
        sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("code_hash", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
    )


def _tokens(unique_key: bool) -> sa.Table:
    return sa.Table(
        "hitl_tokens",
        sa.MetaData(),
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("output", sa.Text),
        sa.Column("idempotency_key", sa.String(400), unique=unique_key),
        sa.Column("idempotency_expires_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("completed_at", sa.Float),
    )


def _steps(with_rowid: bool) -> sa.Table:
    return sa.Table(
        "hitl_steps",
        sa.MetaData(),
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
        sqlite_with_rowid=with_rowid,
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index("ix_hitl_runs_status_created", table_name="hitl_runs")
    op.drop_index("ix_hitl_runs_waiting_token", table_name="hitl_runs")
    op.drop_index("ix_hitl_runs_created", table_name="hitl_runs")
    op.drop_index("ix_hitl_tokens_status_expires", table_name="hitl_tokens")
    op.drop_index("ix_hitl_tokens_run", table_name="hitl_tokens")
    if sqlite:
        # copy_from: the new layout, so the rebuilt tables lose the UNIQUE constraints.
        with op.batch_alter_table("hitl_runs", copy_from=_runs(False), recreate="always"):
            pass
        with op.batch_alter_table("hitl_tokens", copy_from=_tokens(False), recreate="always"):
            pass
        with op.batch_alter_table(
            "hitl_steps",
            copy_from=_steps(False),
            recreate="always",
            table_kwargs={"sqlite_with_rowid": False},
        ):
            pass
    else:
        op.drop_constraint("hitl_runs_idempotency_key_key", "hitl_runs", type_="unique")
        op.drop_constraint("hitl_tokens_idempotency_key_key", "hitl_tokens", type_="unique")
    op.create_index("ix_hitl_runs_created", "hitl_runs", ["created_at"])
    op.create_index("ix_hitl_runs_live", "hitl_runs", ["status", "created_at"], **_where(LIVE_RUN))
    op.create_index(
        "ix_hitl_runs_waiting_token",
        "hitl_runs",
        ["waiting_token_id"],
        **_where("waiting_token_id IS NOT NULL"),
    )
    op.create_index(
        "uq_hitl_runs_idempotency_key",
        "hitl_runs",
        ["idempotency_key"],
        unique=True,
        **_where(SET_KEY),
    )
    op.create_index(
        "ix_hitl_tokens_waiting", "hitl_tokens", ["expires_at"], **_where(WAITING_TOKEN)
    )
    op.create_index("ix_hitl_tokens_run", "hitl_tokens", ["run_id"])
    op.create_index(
        "uq_hitl_tokens_idempotency_key",
        "hitl_tokens",
        ["idempotency_key"],
        unique=True,
        **_where(SET_KEY),
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for index, table in (
        ("uq_hitl_tokens_idempotency_key", "hitl_tokens"),
        ("ix_hitl_tokens_run", "hitl_tokens"),
        ("ix_hitl_tokens_waiting", "hitl_tokens"),
        ("uq_hitl_runs_idempotency_key", "hitl_runs"),
        ("ix_hitl_runs_waiting_token", "hitl_runs"),
        ("ix_hitl_runs_live", "hitl_runs"),
        ("ix_hitl_runs_created", "hitl_runs"),
    ):
        op.drop_index(index, table_name=table)
    if sqlite:
        with op.batch_alter_table("hitl_runs", copy_from=_runs(True), recreate="always"):
            pass
        with op.batch_alter_table("hitl_tokens", copy_from=_tokens(True), recreate="always"):
            pass
        with op.batch_alter_table(
            "hitl_steps",
            copy_from=_steps(True),
            recreate="always",
            table_kwargs={"sqlite_with_rowid": True},
        ):
            pass
    else:
        op.create_unique_constraint(
            "hitl_runs_idempotency_key_key", "hitl_runs", ["idempotency_key"]
        )
        op.create_unique_constraint(
            "hitl_tokens_idempotency_key_key", "hitl_tokens", ["idempotency_key"]
        )
    op.create_index("ix_hitl_runs_status_created", "hitl_runs", ["status", "created_at"])
    op.create_index("ix_hitl_runs_created", "hitl_runs", ["created_at"])
    op.create_index("ix_hitl_runs_waiting_token", "hitl_runs", ["waiting_token_id"])
    op.create_index("ix_hitl_tokens_status_expires", "hitl_tokens", ["status", "expires_at"])
    op.create_index("ix_hitl_tokens_run", "hitl_tokens", ["run_id"])
