"""The store's tables, declared once with SQLAlchemy Core. Migrations mirror this file.

Times are epoch seconds (float): portable across dialects, cheap to compare and index.
JSON values are text; a value over the inline limit lives in `blobs` and its column holds
a reference (see values.py), so listing runs never drags megabytes through the page cache.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_REVISION = "0001"
"""The Alembic head this code expects; start() skips Alembic entirely when the store is at it."""

metadata = sa.MetaData()

runs = sa.Table(
    "hitl_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("task", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=True),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("traceback", sa.Text, nullable=True),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
    sa.Column("idempotency_key", sa.String(400), nullable=True, unique=True),
    sa.Column("idempotency_expires_at", sa.Float, nullable=True),
    sa.Column("owner", sa.String(40), nullable=True),
    sa.Column("waiting_token_id", sa.String(40), nullable=True),
    sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("code_hash", sa.String(64), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Index("ix_hitl_runs_status_created", "status", "created_at"),
    sa.Index("ix_hitl_runs_created", "created_at"),
    sa.Index("ix_hitl_runs_waiting_token", "waiting_token_id"),
)

steps = sa.Table(
    "hitl_steps",
    metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("ok", sa.Integer, nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
)

tokens = sa.Table(
    "hitl_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("run_id", sa.String(40), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(400), nullable=True, unique=True),
    sa.Column("idempotency_expires_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("completed_at", sa.Float, nullable=True),
    sa.Index("ix_hitl_tokens_status_expires", "status", "expires_at"),
    sa.Index("ix_hitl_tokens_run", "run_id"),
)

token_tags = sa.Table(
    "hitl_token_tags",
    metadata,
    sa.Column("tag", sa.String(200), primary_key=True),
    sa.Column("token_id", sa.String(40), primary_key=True),
)

events = sa.Table(
    "hitl_events",
    metadata,
    # Autoincrement id: other processes tail the log by id to see changes they did not make.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("origin", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("token_id", sa.String(40), nullable=True),
    sa.Column("data", sa.Text, nullable=True),
)

engines = sa.Table(
    "hitl_engines",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("proc_start", sa.String(40), nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("stopped_at", sa.Float, nullable=True),
)

blobs = sa.Table(
    "hitl_blobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)
