"""Waits without an index entry; tokens in one b-tree.

A pause and a wake no longer write an index entry for the wait, and a new token is one b-tree
entry (SQLite):

* `ix_hitl_runs_waiting_token` is dropped. The runs waiting on a token are the run that
  created it (the token names it) and the runs listed in the new table `hitl_waits`, which
  holds a row only for a run waiting on another run's token (shared through an idempotency
  key). Existing waits of that kind are copied into it.
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
TOKEN_INDEXES = ("ix_hitl_tokens_waiting", "ix_hitl_tokens_run", "uq_hitl_tokens_idempotency_key")

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
    for index in TOKEN_INDEXES:
        op.drop_index(index, table_name="hitl_tokens")
    with op.batch_alter_table(
        "hitl_tokens",
        copy_from=_tokens(with_rowid),
        recreate="always",
        table_kwargs={"sqlite_with_rowid": with_rowid},
    ):
        pass
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


def upgrade() -> None:
    op.create_table(
        "hitl_waits",
        sa.Column("token_id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.execute(SHARED_WAITS)
    op.drop_index("ix_hitl_runs_waiting_token", table_name="hitl_runs")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_tokens(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_tokens(with_rowid=True)
    op.create_index(
        "ix_hitl_runs_waiting_token",
        "hitl_runs",
        ["waiting_token_id"],
        **_where("waiting_token_id IS NOT NULL"),
    )
    op.drop_table("hitl_waits")
