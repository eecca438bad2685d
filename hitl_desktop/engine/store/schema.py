"""The store's tables, declared once with SQLAlchemy Core. Migrations mirror this file.

Times are epoch seconds (float): portable across dialects, cheap to compare and index.
JSON values are text; a value over the inline limit lives in `blobs` and its column holds
a reference (see values.py), so listing runs never drags megabytes through the page cache.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..models import RunStatus

SCHEMA_REVISION = "0007"
"""The Alembic head this code expects; start() skips Alembic entirely when the store is at it."""

metadata = sa.MetaData()

# Every index costs a page in the WAL on each commit that changes it, so indexes are partial
# where the rows a query looks for are few: live runs, waiting tokens, set keys and waits.
# A partial index serves a query only when the query repeats the index's condition with the
# same literals (SQLite does not look inside bound parameters), hence these shared conditions.
# Idle runs are the unfinished ones not executing (QUEUED or WAITING): every change to a
# finished status sets finished_at. Executing runs stay out of the index, so a run's trigger
# and finish write no entry in it; the few queries for executing runs (recovery, a clean stop)
# scan. (Not `status IN (...)`: SQLite evaluates a 3-value IN list through a temporary b-tree,
# on every write to the table.)
LIVE_STATUSES = (RunStatus.QUEUED, RunStatus.EXECUTING, RunStatus.WAITING)
IDLE_RUN = "finished_at IS NULL AND status <> 'EXECUTING'"
WAITING_TOKEN = "status = 'WAITING'"


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


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
    sa.Column("idempotency_key", sa.String(400), nullable=True),
    sa.Column("idempotency_expires_at", sa.Float, nullable=True),
    sa.Column("owner", sa.String(40), nullable=True),
    sa.Column("waiting_token_id", sa.String(40), nullable=True),
    sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("code_hash", sa.String(64), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("created_by", sa.String(200), nullable=True),
    sa.Index("ix_hitl_runs_created", "created_at"),
    sa.Index("ix_hitl_runs_idle", "status", "created_at", **_where(IDLE_RUN)),
    sa.Index(
        "uq_hitl_runs_idempotency_key",
        "idempotency_key",
        unique=True,
        **_where("idempotency_key IS NOT NULL"),
    ),
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
    # Clustered by (run_id, position): one b-tree to append to, and a run's history is
    # read in one range scan.
    sqlite_with_rowid=False,
)

# WITHOUT ROWID (SQLite): keyed by its text id, a token is one b-tree entry, not a row plus
# a primary-key index entry.
tokens = sa.Table(
    "hitl_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("run_id", sa.String(40), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(400), nullable=True),
    sa.Column("idempotency_expires_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("completed_at", sa.Float, nullable=True),
    sa.Column("completed_by", sa.String(200), nullable=True),
    # No index on run_id: a run's history names its tokens (a "token" step each).
    sa.Index("ix_hitl_tokens_waiting", "expires_at", **_where(WAITING_TOKEN)),
    sa.Index(
        "uq_hitl_tokens_idempotency_key",
        "idempotency_key",
        unique=True,
        **_where("idempotency_key IS NOT NULL"),
    ),
    sqlite_with_rowid=False,
)

waits = sa.Table(
    "hitl_waits",
    metadata,
    # A run waiting on a token that another run created (an idempotency key shared it). A run
    # waiting on its own token, the usual case, needs no row: the token names its run. So the
    # usual pause and wake write no index entry for the wait.
    sa.Column("token_id", sa.String(40), primary_key=True),
    sa.Column("run_id", sa.String(40), primary_key=True),
    sqlite_with_rowid=False,
)

group_members = sa.Table(
    "hitl_group_members",
    metadata,
    # The members of a wait for any / all (wait.for_any, wait.for_all): the group is a token
    # of its own (an id with groups.PREFIX) that finishes when its members do. Clustered by
    # group, in the order the run gave them; found by member when a member finishes.
    sa.Column("group_id", sa.String(40), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("token_id", sa.String(40), nullable=False),
    sa.Column("mode", sa.String(3), nullable=False),  # "any" | "all", the same on every row
    sa.Index("ix_hitl_group_members_token", "token_id"),
    sqlite_with_rowid=False,
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

audit = sa.Table(
    "hitl_audit",
    metadata,
    # An append-only, hash-chained trail (audit.py): each entry's hash covers its content and
    # the previous entry's hash. Never pruned.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False),  # ISO 8601 UTC, the server's clock
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=True),
    sa.Column("token_id", sa.String(40), nullable=True),
    sa.Column("data", sa.Text, nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_hitl_audit_run", "run_id"),
)

requirements = sa.Table(
    "hitl_requirements",
    metadata,
    # What deciding a review's token takes (models.Requirement), fixed at its creation by the
    # engine that executes the run; reviewers cannot write it (docs/team.md).
    sa.Column("token_id", sa.String(40), primary_key=True),
    sa.Column("rule", sa.String(200), nullable=True),
    sa.Column("approvals", sa.Integer, nullable=False),
    sa.Column("approvers", sa.Text, nullable=False),  # JSON list of names
    sa.Column("self_approval", sa.Integer, nullable=False),
    sa.Column("remind_at", sa.Float, nullable=True),
    sa.Column("escalate_to", sa.Text, nullable=False),  # JSON list of names
    sa.Column("seen", sa.String(64), nullable=True),
    sa.Column("requester", sa.String(200), nullable=True),
    sqlite_with_rowid=False,
)

verdicts = sa.Table(
    "hitl_verdicts",
    metadata,
    # One row per reviewer and review's token: a second decision by the same reviewer is a
    # primary-key conflict whatever a client checks.
    sa.Column("token_id", sa.String(40), primary_key=True),
    sa.Column("reviewer", sa.String(200), primary_key=True),
    sa.Column("approve", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("seen", sa.String(64), nullable=True),
    sa.Column("output", sa.Text, nullable=True),
    sqlite_with_rowid=False,
)

policies = sa.Table(
    "hitl_policies",
    metadata,
    # Every version of the approval policy ever applied; the highest is in force.
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
    sa.Column("applied_by", sa.String(200), nullable=False),
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
