"""Fewer index entries per run: waits, executing runs and tokens by run are not indexed.

A pause and a wake no longer write an index entry for the wait, a run's trigger and finish
write none in the live-runs index, and a new token is one b-tree entry:

* `ix_hitl_runs_waiting_token` is dropped. The runs waiting on a token are the run that
  created it (the token names it) and the runs listed in the new table `hitl_waits`, which
  holds a row only for a run waiting on another run's token (shared through an idempotency
  key). Existing waits of that kind are copied into it.
* `ix_hitl_runs_live` (status, created_at; unfinished runs) becomes `ix_hitl_runs_idle`, the
  same without EXECUTING runs: the few queries for executing runs (recovery, a clean stop)
  scan, and the commits of a run's start and end touch no index entry there.
* `ix_hitl_tokens_run` is dropped: a run's history names its tokens.
* SQLite: `hitl_tokens` is rebuilt WITHOUT ROWID, keyed by its id (it was a rowid table plus
  a primary-key index on the id). Every row is kept.

Revision ID: 0003
Revises: 0002
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WAITING_TOKEN = "status = 'WAITING'"
SET_KEY = "idempotency_key IS NOT NULL"
LIVE_RUN = "finished_at IS NULL"
IDLE_RUN = "finished_at IS NULL AND status <> 'EXECUTING'"

SHARED_WAITS = """
INSERT INTO hitl_waits (token_id, run_id)
SELECT r.waiting_token_id, r.id FROM hitl_runs r JOIN hitl_tokens t ON t.id = r.waiting_token_id
WHERE r.status = 'WAITING' AND r.finished_at IS NULL AND (t.run_id IS NULL OR t.run_id <> r.id)
"""


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def _tokens(with_rowid: bool) -> sa.Table:
    return sa.Table(
        "hitl_tokens",
        sa.MetaData(),
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("output", sa.Text),
        sa.Column("idempotency_key", sa.String(400)),
        sa.Column("idempotency_expires_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("completed_at", sa.Float),
        sqlite_with_rowid=with_rowid,
    )


def _rebuild_tokens(with_rowid: bool) -> None:
    """Rebuilt without its indexes; the caller creates them again."""
    with op.batch_alter_table(
        "hitl_tokens",
        copy_from=_tokens(with_rowid),
        recreate="always",
        table_kwargs={"sqlite_with_rowid": with_rowid},
    ):
        pass


def _token_indexes() -> None:
    op.create_index(
        "ix_hitl_tokens_waiting", "hitl_tokens", ["expires_at"], **_where(WAITING_TOKEN)
    )
    op.create_index(
        "uq_hitl_tokens_idempotency_key",
        "hitl_tokens",
        ["idempotency_key"],
        unique=True,
        **_where(SET_KEY),
    )


def upgrade() -> None:
    op.create_table(
        "hitl_waits",
        sa.Column("token_id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.execute(SHARED_WAITS)
    op.drop_index("ix_hitl_runs_waiting_token", table_name="hitl_runs")
    op.drop_index("ix_hitl_runs_live", table_name="hitl_runs")
    op.create_index("ix_hitl_runs_idle", "hitl_runs", ["status", "created_at"], **_where(IDLE_RUN))
    for index in ("ix_hitl_tokens_waiting", "ix_hitl_tokens_run", "uq_hitl_tokens_idempotency_key"):
        op.drop_index(index, table_name="hitl_tokens")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_tokens(with_rowid=False)
    _token_indexes()


def downgrade() -> None:
    for index in ("ix_hitl_tokens_waiting", "uq_hitl_tokens_idempotency_key"):
        op.drop_index(index, table_name="hitl_tokens")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_tokens(with_rowid=True)
    _token_indexes()
    op.create_index("ix_hitl_tokens_run", "hitl_tokens", ["run_id"])
    op.drop_index("ix_hitl_runs_idle", table_name="hitl_runs")
    op.create_index("ix_hitl_runs_live", "hitl_runs", ["status", "created_at"], **_where(LIVE_RUN))
    op.create_index(
        "ix_hitl_runs_waiting_token",
        "hitl_runs",
        ["waiting_token_id"],
        **_where("waiting_token_id IS NOT NULL"),
    )
    op.drop_table("hitl_waits")
