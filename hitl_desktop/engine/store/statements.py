"""The store's statements, built once at import with SQLAlchemy Core (compiled once for SQLite).

Hot statements write the NULLs they usually write as literals, in variants: pysqlite binds a
None parameter through its adaptation protocol, far slower than a str or a float. Writes on
behalf of an executing run carry the ownership fence in their WHERE clause: no match, no write.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam

from ..models import RunStatus, TokenStatus
from . import schema
from .tx import Prepared

RUNS, TOKENS, STEPS = schema.runs, schema.tokens, schema.steps
EVENTS, WAITS, ENGINES, TOKEN_TAGS = schema.events, schema.waits, schema.engines, schema.token_tags
AUDIT = schema.audit


def lit(value: str) -> sa.ColumnElement[str]:
    """A string rendered into the SQL text: partial indexes match literals, not parameters."""
    return sa.literal_column(f"'{value}'", sa.String)


LIVE = RUNS.c.finished_at.is_(None)
IDLE = sa.text(schema.IDLE_RUN)
"""The condition of ix_hitl_runs_idle, from the same text: queries on QUEUED or WAITING runs
repeat it, as SQLite uses a partial index only for a query that states its condition."""
WAITING = TOKENS.c.status == lit(TokenStatus.WAITING)
"""The condition of ix_hitl_tokens_waiting."""

EVENT_PAGE = 500
"""Events read per statement when tailing the log."""


def _inserting(table: sa.Table, nulls: Iterable[str] = (), skip: Iterable[str] = ()) -> Prepared:
    """INSERT of every column of *table* but *skip*, with *nulls* as NULL literals."""
    null, skipped = set(nulls), set(skip)
    return Prepared(
        table.insert().values(
            {
                c.name: None if c.name in null else bindparam(c.name)
                for c in table.c
                if c.name not in skipped
            }
        )
    )


_NEW_RUN_NULLS = ("output", "error", "traceback", "waiting_token_id", "finished_at")
_KEY_NULLS = ("idempotency_key", "idempotency_expires_at")
insert_run = _inserting(RUNS, _NEW_RUN_NULLS)
insert_unkeyed_run = _inserting(RUNS, _NEW_RUN_NULLS + _KEY_NULLS)
insert_step = _inserting(STEPS)
insert_step_ok = _inserting(STEPS, ["error"])
_TOKEN_UNSET = ("output", "completed_at", "completed_by")
insert_token = _inserting(TOKENS, skip=_TOKEN_UNSET)
insert_unkeyed_token = _inserting(TOKENS, _KEY_NULLS, skip=_TOKEN_UNSET)
insert_tag = _inserting(schema.token_tags)
insert_member = _inserting(schema.group_members)
insert_event = _inserting(EVENTS, skip=["id"])
run_by_key = Prepared(sa.select(RUNS).where(RUNS.c.idempotency_key == bindparam("key")))
forget_run_key = Prepared(
    RUNS.update()
    .where(RUNS.c.id == bindparam("rid"))
    .values(idempotency_key=None, idempotency_expires_at=None)
)
token_by_key = Prepared(sa.select(TOKENS).where(TOKENS.c.idempotency_key == bindparam("key")))
forget_token_key = Prepared(
    TOKENS.update()
    .where(TOKENS.c.id == bindparam("rid"))
    .values(idempotency_key=None, idempotency_expires_at=None)
)
_FENCED = (
    RUNS.c.id == bindparam("rid"),
    RUNS.c.owner == bindparam("fence_owner"),
    RUNS.c.status == RunStatus.EXECUTING,
)
fence = Prepared(RUNS.update().where(*_FENCED).values(updated_at=bindparam("now")))
token_status = Prepared(
    sa.select(TOKENS.c.status, TOKENS.c.output).where(TOKENS.c.id == bindparam("rid"))
)
lock_token = Prepared(
    sa.select(TOKENS.c.status, TOKENS.c.output, TOKENS.c.run_id)
    .where(TOKENS.c.id == bindparam("rid"))
    .with_for_update()
)
pause_run = Prepared(
    RUNS.update()
    .where(*_FENCED)
    .values(
        status=RunStatus.WAITING,
        owner=None,
        waiting_token_id=bindparam("token"),
        updated_at=bindparam("now"),
    )
)


def _finishing(**constants: Any) -> Prepared:
    """The fenced UPDATE that ends an executing run; *constants* replace bound values."""
    ending: dict[str, Any] = {
        "status": bindparam("status"),
        "output": bindparam("output"),
        "error": bindparam("error"),
        "traceback": bindparam("traceback"),
        "owner": None,
        "waiting_token_id": None,
        "updated_at": bindparam("now"),
        "finished_at": bindparam("now"),
    }
    return Prepared(RUNS.update().where(*_FENCED).values({**ending, **constants}))


finish_run = _finishing()
complete_run = _finishing(status=RunStatus.COMPLETED, error=None, traceback=None)
# The deadline is part of the completion's compare-and-set: a token past its expires_at cannot
# be completed, whether or not an engine has timed it out yet.
complete_token = Prepared(
    TOKENS.update()
    .where(
        TOKENS.c.id == bindparam("rid"),
        TOKENS.c.status == TokenStatus.WAITING,
        TOKENS.c.expires_at > bindparam("now"),
    )
    .values(
        status=TokenStatus.COMPLETED,
        output=bindparam("output"),
        completed_at=bindparam("now"),
        completed_by=bindparam("by"),  # PostgreSQL's trigger puts the session's role here
    )
)
time_out_token = Prepared(
    TOKENS.update()
    .where(TOKENS.c.id == bindparam("rid"), TOKENS.c.status == TokenStatus.WAITING)
    .values(status=TokenStatus.TIMED_OUT, output=None, completed_at=bindparam("now"))
)
TOKEN_STATE = (
    TOKENS.c.status,
    TOKENS.c.created_at,
    TOKENS.c.expires_at,
    TOKENS.c.run_id,
    TOKENS.c.completed_at,
    TOKENS.c.completed_by,
)
"""What completing or deciding a token checks first."""
token_deadline = Prepared(sa.select(*TOKEN_STATE).where(TOKENS.c.id == bindparam("rid")))
token_row = Prepared(sa.select(TOKENS).where(TOKENS.c.id == bindparam("rid")))
run_row = Prepared(sa.select(RUNS).where(RUNS.c.id == bindparam("rid")))
wake_run = Prepared(
    RUNS.update()
    .where(
        RUNS.c.id == bindparam("rid"),
        RUNS.c.status == RunStatus.WAITING,
        RUNS.c.waiting_token_id == bindparam("token"),
    )
    .values(
        status=bindparam("status"),
        owner=bindparam("owner"),
        waiting_token_id=None,
        updated_at=bindparam("now"),
    )
)
waiter = Prepared(
    sa.select(RUNS.c.id, RUNS.c.task, RUNS.c.payload).where(
        RUNS.c.id == bindparam("rid"),
        RUNS.c.status == RunStatus.WAITING,
        RUNS.c.waiting_token_id == bindparam("token"),
    )
)
insert_wait = Prepared(WAITS.insert().values(token_id=bindparam("token"), run_id=bindparam("rid")))
shared_waiters = Prepared(sa.select(WAITS.c.run_id).where(WAITS.c.token_id == bindparam("token")))
forget_waits = Prepared(WAITS.delete().where(WAITS.c.token_id == bindparam("token")))
run_task = Prepared(sa.select(RUNS.c.task, RUNS.c.status).where(RUNS.c.id == bindparam("rid")))
steps_of = Prepared(
    sa.select(STEPS).where(STEPS.c.run_id == bindparam("rid")).order_by(STEPS.c.position)
)
token_steps_of = Prepared(
    sa.select(STEPS.c.result).where(
        STEPS.c.run_id == bindparam("rid"), STEPS.c.kind == lit("token")
    )
)
claim_run = Prepared(
    RUNS.update()
    .where(RUNS.c.id == bindparam("rid"), RUNS.c.status == bindparam("from_status"))
    .values(status=RunStatus.EXECUTING, owner=bindparam("owner"), updated_at=bindparam("now"))
)
queued = Prepared(
    sa.select(RUNS.c.id, RUNS.c.task)
    .where(RUNS.c.status == lit(RunStatus.QUEUED), IDLE)
    .order_by(RUNS.c.created_at)
    .limit(bindparam("limit"))
)
due_tokens = Prepared(
    sa.select(TOKENS.c.id, TOKENS.c.run_id)
    .where(WAITING, TOKENS.c.expires_at <= bindparam("now"))
    .order_by(TOKENS.c.expires_at)
    .limit(bindparam("limit"))
)
earliest = Prepared(sa.select(sa.func.min(TOKENS.c.expires_at).label("v")).where(WAITING))
events_after = Prepared(
    sa.select(EVENTS)
    .where(EVENTS.c.id > bindparam("after"))
    .order_by(EVENTS.c.id)
    .limit(EVENT_PAGE)
)
last_event = Prepared(sa.select(sa.func.max(EVENTS.c.id).label("v")))
