"""Transactions on runs: trigger, the records of an executing run, pause, finish, cancel,
claiming queued runs and taking over those of dead engines, and reads.

Lock order, everywhere: token row, then run row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from .. import serde
from ..errors import RunNotFound, TokenNotFound
from ..models import Run, RunStatus, Step, TokenStatus
from . import audit, groups, schema, values
from . import statements as sql
from .event_log import announce, small
from .history import LostOwnership, fence, insert_token, resume, token_state, write_records
from .records import Canceled, Claimed, Committed, NewRun, Paused, TokenWrite, Triggered, Writes
from .rows import run_record, step_record
from .tx import Tx

RUNS = sql.RUNS
CLAIM_BATCH = 100
_FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


def trigger(tx: Tx, run: NewRun, payload: str | None, origin: str) -> Triggered:
    """Insert a run, or return the live run holding the same idempotency key."""
    out = Triggered()
    key = run.idempotency_key
    now = run.created_at
    if key is not None:
        existing = tx.one(sql.run_by_key, {"key": key})
        if existing is not None:
            expires = existing["idempotency_expires_at"]
            if expires is None or expires > now:
                out.existing = run_record(
                    existing,
                    values.get(tx, existing["payload"]),
                    values.get(tx, existing["output"]),
                    cached=True,
                )
                return out
            tx.execute(sql.forget_run_key, {"rid": existing["id"]})
    row = {
        "id": run.id,
        "task": run.task,
        "status": run.status.value,
        "payload": values.put(tx, payload),
        "tags": serde.encode(run.tags) if run.tags else "[]",
        "idempotency_key": key,
        "idempotency_expires_at": run.idempotency_expires_at,
        "owner": run.owner,
        "recoveries": 0,
        "code_hash": run.code_hash,
        "created_at": now,
        "updated_at": now,
        "created_by": run.created_by,
    }
    tx.execute(sql.insert_run if key is not None else sql.insert_unkeyed_run, row)
    announce(tx, out, "RunTriggered", run.id, now, origin, data={"task": run.task})
    if run.audit is not None:
        kind, about = run.audit
        audit.note_run(tx, kind, about, run.id, run.task, run.created_by, now)
    return out


def flush(tx: Tx, run_id: str, owner: str, writes: Writes, now: float) -> None:
    fence(tx, run_id, owner, now)
    write_records(tx, run_id, writes)


def create_keyed_token(
    tx: Tx, run_id: str, owner: str, writes: Writes, token: TokenWrite, now: float
) -> TokenWrite | None:
    """Flush, then insert *token* unless a live token holds its key; return that one if so."""
    fence(tx, run_id, owner, now)
    write_records(tx, run_id, writes)
    existing = tx.one(sql.token_by_key, {"key": token.idempotency_key})
    if existing is not None:
        expires = existing["idempotency_expires_at"]
        if expires is None or expires > now:
            return TokenWrite(
                str(existing["id"]),
                existing["run_id"],
                serde.load(existing["tags"]),
                float(existing["created_at"]),
                float(existing["expires_at"]),
                existing["idempotency_key"],
                existing["idempotency_expires_at"],
            )
        tx.execute(sql.forget_token_key, {"rid": existing["id"]})
    insert_token(tx, token)
    return None


def pause(
    tx: Tx, run_id: str, owner: str, writes: Writes, token_id: str, now: float, by: str = ""
) -> Paused:
    """Suspend the run on *token_id*; if the token already finished, say so instead. A wait
    for any / all (a group) whose members settle it already is completed here instead, as
    *by*, and the run goes on."""
    out = Paused()
    params = {"rid": run_id, "token": token_id, "now": now, "fence_owner": owner}
    group = groups.is_group(token_id)
    # A token inserted by this very commit is WAITING: no need to read (or lock) it.
    if group or not any(t.id == token_id for t in writes.tokens):
        fence(tx, run_id, owner, now)
        write_records(tx, run_id, writes)
        state = tx.one(sql.lock_token, {"rid": token_id})
        if state is None:
            raise TokenNotFound(token_id)
        if state["status"] != TokenStatus.WAITING:
            out.finished = token_state(tx, state)
            return out
        if group:
            out.finished = groups.at_pause(tx, token_id, run_id, now, owner, by, out)
            if out.finished is not None:
                return out
        tx.execute(sql.pause_run, params)  # fenced above
        if state["run_id"] != run_id:  # another run's token: list this run as a waiter
            tx.execute(sql.insert_wait, {"token": token_id, "rid": run_id})
    else:
        # The fence is the UPDATE's own WHERE clause; it goes first, so a run taken over
        # fails with LostOwnership before its records could clash with the new owner's.
        if tx.execute(sql.pause_run, params) != 1:
            raise LostOwnership(run_id)
        write_records(tx, run_id, writes)
    announce(tx, out, "RunPaused", run_id, now, owner, token_id)
    return out


def complete(
    tx: Tx,
    run_id: str,
    owner: str,
    writes: Writes,
    output: str | None,
    now: float,
    actor: str,
    audited: bool = False,
) -> Committed:
    out = Committed()
    params = {"rid": run_id, "fence_owner": owner, "output": values.put(tx, output), "now": now}
    # Fenced by the UPDATE's own WHERE clause, before the records are written (see pause).
    if tx.execute(sql.complete_run, params) != 1:
        raise LostOwnership(run_id)
    write_records(tx, run_id, writes)
    announce(tx, out, "RunCompleted", run_id, now, owner, data={"output": small(output)})
    if audited:
        audit.append(tx, "RunCompleted", run_id, None, output, actor, now)
    return out


def fail(
    tx: Tx,
    run_id: str,
    owner: str,
    writes: Writes,
    error: str,
    traceback: str,
    now: float,
    actor: str,
    audited: bool = False,
) -> Committed:
    out = Committed()
    params = {
        "rid": run_id,
        "fence_owner": owner,
        "status": RunStatus.FAILED.value,
        "output": None,
        "error": error,
        "traceback": traceback,
        "now": now,
    }
    if tx.execute(sql.finish_run, params) != 1:  # fenced, as in complete
        raise LostOwnership(run_id)
    write_records(tx, run_id, writes)
    data = {"error": error, "traceback": traceback}
    announce(tx, out, "RunFailed", run_id, now, owner, data=data)
    if audited:
        audit.append(tx, "RunFailed", run_id, None, serde.encode({"error": error}), actor, now)
    return out


def cancel(
    tx: Tx,
    run_id: str,
    reason: str | None,
    now: float,
    origin: str,
    actor: str,
    audited: frozenset[str] = frozenset(),
) -> Canceled:
    out = Canceled()
    row = tx.one(sql.run_task, {"rid": run_id})
    if row is None:
        raise RunNotFound(run_id)
    if row["status"] in _FINISHED:
        out.already = RunStatus(row["status"])
        return out
    tx.execute(
        RUNS.update()
        .where(RUNS.c.id == run_id)
        .values(
            status=RunStatus.CANCELED,
            error=reason,
            owner=None,
            waiting_token_id=None,
            updated_at=now,
            finished_at=now,
        )
    )
    announce(tx, out, "RunCanceled", run_id, now, origin, data={"reason": reason})
    if row["task"] in audited:
        data = serde.encode({"reason": reason})
        audit.append(tx, "RunCanceled", run_id, None, data, actor, now)
    return out


# ---------------------------------------------------------------- claiming and recovery


def claim_queued(
    tx: Tx, owner: str, tasks: frozenset[str], now: float, limit: int = CLAIM_BATCH
) -> Claimed:
    """Claim up to *limit* QUEUED runs of the tasks this engine knows."""
    out = Claimed()
    rows = tx.all(sql.queued, {"limit": limit})
    out.looked_at = len(rows)
    for row in rows:
        if row["task"] not in tasks:
            continue
        params = {
            "rid": row["id"],
            "from_status": RunStatus.QUEUED.value,
            "owner": owner,
            "now": now,
        }
        if tx.execute(sql.claim_run, params) == 1:
            announce(tx, out, "RunResumed", row["id"], now, owner)
            out.resumed.append(resume(tx, str(row["id"]), None))
    return out


def recover(
    tx: Tx,
    owner: str,
    dead: Sequence[str],
    tasks: frozenset[str],
    max_recoveries: int,
    now: float,
) -> Committed:
    """Take over the runs that dead engines were executing (bounded per run)."""
    out = Committed()
    if not dead:
        return out
    rows = tx.all(
        sa.select(RUNS.c.id, RUNS.c.task, RUNS.c.recoveries).where(
            RUNS.c.status == sql.lit(RunStatus.EXECUTING), sql.LIVE, RUNS.c.owner.in_(list(dead))
        )
    )
    for row in rows:
        run_id = str(row["id"])
        this_run = RUNS.update().where(RUNS.c.id == run_id)
        if row["task"] not in tasks:
            tx.execute(this_run.values(status=RunStatus.QUEUED, owner=None))
            continue
        if row["recoveries"] >= max_recoveries:
            error = (
                f"run was recovered {row['recoveries']} times after its engine died while "
                "executing it; it is failed to stop a crash loop"
            )
            tx.execute(
                this_run.values(
                    status=RunStatus.FAILED,
                    error=error,
                    owner=None,
                    updated_at=now,
                    finished_at=now,
                )
            )
            data = {"error": error, "traceback": None}
            announce(tx, out, "RunFailed", run_id, now, owner, data=data)
            continue
        tx.execute(this_run.values(owner=owner, recoveries=RUNS.c.recoveries + 1, updated_at=now))
        announce(tx, out, "RunResumed", run_id, now, owner)
        out.resumed.append(resume(tx, run_id, None))
    return out


# ---------------------------------------------------------------- reads


def get_run(tx: Tx, run_id: str) -> Run:
    row = tx.one(sql.run_row, {"rid": run_id})
    if row is None:
        raise RunNotFound(run_id)
    return run_record(row, values.get(tx, row["payload"]), values.get(tx, row["output"]))


def list_runs(
    tx: Tx, status: RunStatus | None, task: str | None, limit: int, before: float | None
) -> list[Run]:
    q = sa.select(RUNS).order_by(RUNS.c.created_at.desc()).limit(limit)
    if status == RunStatus.EXECUTING:  # the few runs executing now: a scan, see ix_hitl_runs_idle
        q = q.where(RUNS.c.status == sql.lit(status), sql.LIVE)
    elif status in schema.LIVE_STATUSES:
        q = q.where(RUNS.c.status == sql.lit(status), sql.IDLE)
    elif status is not None:
        q = q.where(RUNS.c.status == status.value)
    if task is not None:
        q = q.where(RUNS.c.task == task)
    if before is not None:
        q = q.where(RUNS.c.created_at < before)
    return [
        run_record(r, values.get(tx, r["payload"]), values.get(tx, r["output"])) for r in tx.all(q)
    ]


def get_steps(tx: Tx, run_id: str) -> list[Step]:
    if tx.one(sql.run_task, {"rid": run_id}) is None:
        raise RunNotFound(run_id)
    return [
        step_record(r, values.get(tx, r["result"])) for r in tx.all(sql.steps_of, {"rid": run_id})
    ]


def count_runs(tx: Tx) -> dict[str, int]:
    rows = tx.all(sa.select(RUNS.c.status, sa.func.count().label("n")).group_by(RUNS.c.status))
    return {str(r["status"]): int(r["n"]) for r in rows}
