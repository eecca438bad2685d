"""The store's transactions: the only place the engine's SQL lives.

Every function here is a synchronous transaction body `fn(tx, ...)`, run by an Executor
(sql.py) in one transaction. Bodies that change a run also append to the event log in the
same transaction, so a change and its announcement commit together or not at all.

Lock order, everywhere: token row, then run row. Runs are fenced by `owner`: a body that
writes on behalf of an executing run checks, in the same transaction, that this engine still
owns it (pause and finish through their own UPDATE's WHERE clause, other writes first), and
raises LostOwnership otherwise, which rolls back everything the body wrote. An engine that
was wrongly presumed dead cannot write over the one that took its runs over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .. import serde
from ..errors import OutputRefused, RunNotFound, TokenAlreadyFinished, TokenNotFound
from . import schema, values
from .records import Committed, EventRow, Recorded, Resume, TokenState, TokenWrite, Writes
from .sql import Prepared, Row, Tx

R, T, S, E, W = schema.runs, schema.tokens, schema.steps, schema.events, schema.waits
b = sa.bindparam


def _lit(value: str) -> sa.ColumnElement[str]:
    """A string rendered into the SQL text: partial indexes match literals, not parameters."""
    return sa.literal_column(f"'{value}'", sa.String)


LIVE = R.c.finished_at.is_(None)
IDLE = sa.text(schema.IDLE_RUN)
"""The condition of ix_hitl_runs_idle, from the same text: queries on QUEUED or WAITING runs
repeat it, as SQLite uses a partial index only for a query that states its condition."""
WAITING = T.c.status == _lit("WAITING")
"""The condition of ix_hitl_tokens_waiting."""

_encode = serde.encode
"""Compact JSON for the event log (and token tags)."""

CLAIM_BATCH = 100
EVENT_PAGE = 500
EVENT_DATA_LIMIT = 16 * 1024
"""Outputs larger than this are not copied into the event log; readers fetch the run."""


class LostOwnership(Exception):
    """Another engine took this run over (we were presumed dead); our writes are refused."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} is now owned by another engine; this engine stops executing it"
        )
        self.run_id = run_id


# ---------------------------------------------------------------- statements (compiled once)

# Hot statements write the NULLs they usually write as literals, in variants: pysqlite binds a
# None parameter through its adaptation protocol, far slower than a str or a float.


def _inserting(table: sa.Table, nulls: Iterable[str] = (), skip: Iterable[str] = ()) -> Prepared:
    """INSERT of every column of *table* but *skip*, with *nulls* as NULL literals."""
    null, skipped = set(nulls), set(skip)
    return Prepared(
        table.insert().values(
            {
                c.name: None if c.name in null else b(c.name)
                for c in table.c
                if c.name not in skipped
            }
        )
    )


_NEW_RUN_NULLS = ("output", "error", "traceback", "waiting_token_id", "finished_at")
_KEY_NULLS = ("idempotency_key", "idempotency_expires_at")
_insert_run = _inserting(R, _NEW_RUN_NULLS)
_insert_unkeyed_run = _inserting(R, _NEW_RUN_NULLS + _KEY_NULLS)
_insert_step = _inserting(S)
_insert_step_ok = _inserting(S, ["error"])
_TOKEN_UNSET = ("output", "completed_at")
_insert_token = _inserting(T, skip=_TOKEN_UNSET)
_insert_unkeyed_token = _inserting(T, _KEY_NULLS, skip=_TOKEN_UNSET)
_insert_tag = _inserting(schema.token_tags)
_insert_event = _inserting(E, skip=["id"])
_run_by_key = Prepared(sa.select(R).where(R.c.idempotency_key == b("key")))
_forget_run_key = Prepared(
    R.update().where(R.c.id == b("rid")).values(idempotency_key=None, idempotency_expires_at=None)
)
_token_by_key = Prepared(sa.select(T).where(T.c.idempotency_key == b("key")))
_forget_token_key = Prepared(
    T.update().where(T.c.id == b("rid")).values(idempotency_key=None, idempotency_expires_at=None)
)
# Writes on behalf of an executing run carry the fence in their WHERE clause: no match, no write.
_FENCED = (R.c.id == b("rid"), R.c.owner == b("fence_owner"), R.c.status == "EXECUTING")
_fence = Prepared(R.update().where(*_FENCED).values(updated_at=b("now")))
_token_status = Prepared(sa.select(T.c.status, T.c.output).where(T.c.id == b("rid")))
_lock_token = Prepared(
    sa.select(T.c.status, T.c.output, T.c.run_id).where(T.c.id == b("rid")).with_for_update()
)
_pause_run = Prepared(
    R.update()
    .where(*_FENCED)
    .values(status="WAITING", owner=None, waiting_token_id=b("token"), updated_at=b("now"))
)


def _finishing(**constants: Any) -> Prepared:
    """The fenced UPDATE that ends an executing run; *constants* replace bound values."""
    ending: dict[str, Any] = {
        "status": b("status"),
        "output": b("output"),
        "error": b("error"),
        "traceback": b("traceback"),
        "owner": None,
        "waiting_token_id": None,
        "updated_at": b("now"),
        "finished_at": b("now"),
    }
    return Prepared(R.update().where(*_FENCED).values({**ending, **constants}))


_finish_run = _finishing()
_complete_run = _finishing(status="COMPLETED", error=None, traceback=None)
# The deadline is part of the completion's compare-and-set: a token past its expires_at cannot
# be completed, whether or not an engine has timed it out yet.
_complete_token = Prepared(
    T.update()
    .where(T.c.id == b("rid"), T.c.status == "WAITING", T.c.expires_at > b("now"))
    .values(status="COMPLETED", output=b("output"), completed_at=b("now"))
)
_time_out_token = Prepared(
    T.update()
    .where(T.c.id == b("rid"), T.c.status == "WAITING")
    .values(status="TIMED_OUT", output=None, completed_at=b("now"))
)
_token_deadline = Prepared(
    sa.select(T.c.status, T.c.expires_at, T.c.run_id).where(T.c.id == b("rid"))
)
_token_row = Prepared(sa.select(T).where(T.c.id == b("rid")))
_run_row = Prepared(sa.select(R).where(R.c.id == b("rid")))
_wake_run = Prepared(
    R.update()
    .where(R.c.id == b("rid"), R.c.status == "WAITING", R.c.waiting_token_id == b("token"))
    .values(status=b("status"), owner=b("owner"), waiting_token_id=None, updated_at=b("now"))
)
_waiter = Prepared(
    sa.select(R.c.id, R.c.task, R.c.payload).where(
        R.c.id == b("rid"), R.c.status == "WAITING", R.c.waiting_token_id == b("token")
    )
)
_insert_wait = Prepared(W.insert().values(token_id=b("token"), run_id=b("rid")))
_shared_waiters = Prepared(sa.select(W.c.run_id).where(W.c.token_id == b("token")))
_forget_waits = Prepared(W.delete().where(W.c.token_id == b("token")))
_run_task = Prepared(sa.select(R.c.task, R.c.status).where(R.c.id == b("rid")))
_steps_of = Prepared(sa.select(S).where(S.c.run_id == b("rid")).order_by(S.c.position))
_token_steps_of = Prepared(
    sa.select(S.c.result).where(S.c.run_id == b("rid"), S.c.kind == _lit("token"))
)
_claim_run = Prepared(
    R.update()
    .where(R.c.id == b("rid"), R.c.status == b("from_status"))
    .values(status="EXECUTING", owner=b("owner"), updated_at=b("now"))
)
_queued = Prepared(
    sa.select(R.c.id, R.c.task)
    .where(R.c.status == _lit("QUEUED"), IDLE)
    .order_by(R.c.created_at)
    .limit(b("limit"))
)
_due_tokens = Prepared(
    sa.select(T.c.id, T.c.run_id)
    .where(WAITING, T.c.expires_at <= b("now"))
    .order_by(T.c.expires_at)
    .limit(b("limit"))
)
_earliest = Prepared(sa.select(sa.func.min(T.c.expires_at).label("v")).where(WAITING))
_events_after = Prepared(
    sa.select(E)
    .where(E.c.id > b("after"), E.c.origin != b("origin"))
    .order_by(E.c.id)
    .limit(EVENT_PAGE)
)
_last_event = Prepared(sa.select(sa.func.max(E.c.id).label("v")))


# ---------------------------------------------------------------- helpers


def _event(
    tx: Tx,
    out: Committed,
    kind: str,
    run_id: str,
    now: float,
    origin: str,
    token_id: str | None = None,
    data: Any = None,
) -> None:
    """Announce a change: to this engine's subscribers always (out.events), and in the event
    log when another engine is attached to the store. The log exists for other processes;
    with none to read it, writing it would cost every commit a page for nothing."""
    text = None
    if tx.others_attached(origin):
        text = None if data is None else _encode(data)
        row = {
            "at": now,
            "origin": origin,
            "kind": kind,
            "run_id": run_id,
            "token_id": token_id,
            "data": text,
        }
        tx.execute(_insert_event, row)
    out.events.append(EventRow(0, now, origin, kind, run_id, token_id, text, data))


def _small(text: str | None) -> Any:
    """An output small enough to copy into an event, else None (readers fetch the run)."""
    if text is None or len(text) > EVENT_DATA_LIMIT:
        return None
    return serde.load(text)


def _write(tx: Tx, run_id: str, writes: Writes) -> None:
    if writes.steps:
        ok = all(s.error is None for s in writes.steps)
        tx.execute_many(
            _insert_step_ok if ok else _insert_step,
            [
                {
                    "run_id": run_id,
                    "position": s.position,
                    "kind": s.kind,
                    "name": s.name,
                    "ok": int(s.ok),
                    "result": values.put(tx, s.result),
                    "error": s.error,
                    "attempts": s.attempts,
                    "started_at": s.started_at,
                    "finished_at": s.finished_at,
                }
                for s in writes.steps
            ],
        )
    for token in writes.tokens:
        _insert_token_row(tx, token)


def _insert_token_row(tx: Tx, token: TokenWrite) -> None:
    tx.execute(
        _insert_token if token.idempotency_key is not None else _insert_unkeyed_token,
        {
            "id": token.id,
            "run_id": token.run_id,
            "status": "WAITING",
            "tags": _encode(token.tags) if token.tags else "[]",
            "idempotency_key": token.idempotency_key,
            "idempotency_expires_at": token.idempotency_expires_at,
            "created_at": token.created_at,
            "expires_at": token.expires_at,
        },
    )
    if token.tags:
        tx.execute_many(_insert_tag, [{"tag": t, "token_id": token.id} for t in token.tags])


def _fenced(tx: Tx, run_id: str, owner: str, now: float) -> None:
    if tx.execute(_fence, {"rid": run_id, "fence_owner": owner, "now": now}) != 1:
        raise LostOwnership(run_id)


def _resume(
    tx: Tx,
    run_id: str,
    token_id: str | None,
    run: Row | None = None,
    state: TokenState | None = None,
) -> Resume:
    """What replaying *run_id* needs; *run* is its row (task and payload) when already read,
    *state* that of *token_id* when this transaction just finished it."""
    if run is None:
        run = tx.one(_run_row, {"rid": run_id})
        assert run is not None
    steps = {
        int(r["position"]): Recorded(
            str(r["kind"]), str(r["name"]), bool(r["ok"]), values.get(tx, r["result"]), r["error"]
        )
        for r in tx.all(_steps_of, {"rid": run_id})
    }
    tokens = {} if token_id is None or state is None else {token_id: state}
    # The history names every token the run created or was handed (a "token" record each):
    # when the one just finished is the only one (the usual run), there is nothing to read.
    named = [serde.load(r.result)["id"] for r in steps.values() if r.kind == "token" and r.result]
    if token_id is not None:
        named.append(token_id)  # a token another run created and this one waited on
    for named_id in named:
        if named_id not in tokens:
            row = tx.one(_token_status, {"rid": named_id})
            if row is not None:
                tokens[named_id] = TokenState(str(row["status"]), values.get(tx, row["output"]))
    return Resume(run_id, str(run["task"]), values.get(tx, run["payload"]), steps, tokens, token_id)


def _wake(
    tx: Tx,
    out: Committed,
    token_id: str,
    creator: str | None,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    state: TokenState,
    known: Resume | None = None,
) -> None:
    """Hand every run waiting on *token_id* (now in *state*) to *owner*, or queue it for any
    engine knowing it. *known* is the history of a waiter as the engine that paused it kept it:
    valid as long as that run still waits on this token (it cannot have run since), which the
    wake's own UPDATE checks.
    The waiters are the run that created the token (*creator*), if it waits on it, and the
    runs listed in hitl_waits (a token shared through an idempotency key)."""
    candidates = [] if creator is None else [creator]
    shared = tx.all(_shared_waiters, {"token": token_id})
    if shared:
        candidates += [str(r["run_id"]) for r in shared if r["run_id"] != creator]
        tx.execute(_forget_waits, {"token": token_id})
    for candidate in candidates:
        kept = known if known is not None and known.run_id == candidate else None
        if kept is not None:
            row: Row | None = {"task": kept.task}
        else:
            row = tx.one(_waiter, {"rid": candidate, "token": token_id})
        if row is None:  # not waiting on it (any more)
            continue
        claim = owner is not None and row["task"] in tasks
        params = {
            "rid": candidate,
            "token": token_id,
            "status": "EXECUTING" if claim else "QUEUED",
            "owner": owner if claim else None,
            "now": now,
        }
        if tx.execute(_wake_run, params) == 1 and claim:
            assert owner is not None
            _event(tx, out, "RunResumed", candidate, now, owner, token_id)
            if kept is not None:
                tokens = {**kept.tokens, token_id: state}
                resume = Resume(candidate, kept.task, kept.payload, kept.steps, tokens, token_id)
            else:
                resume = _resume(tx, candidate, token_id, row, state)
            out.resumed.append(resume)


# ---------------------------------------------------------------- runs


def trigger(
    tx: Tx,
    run: dict[str, Any],
    payload: str | None,
    now: float,
    origin: str,
) -> Committed:
    """Insert a run, or return the live run holding the same idempotency key (out.value)."""
    out = Committed()
    key = run["idempotency_key"]
    if key is not None:
        existing = tx.one(_run_by_key, {"key": key})
        if existing is not None:
            expires = existing["idempotency_expires_at"]
            if expires is None or expires > now:
                out.value = existing
                return out
            tx.execute(_forget_run_key, {"rid": existing["id"]})
    statement = _insert_run if key is not None else _insert_unkeyed_run
    tx.execute(statement, {**run, "payload": values.put(tx, payload)})
    _event(tx, out, "RunTriggered", run["id"], now, origin, data={"task": run["task"]})
    return out


def flush(tx: Tx, run_id: str, owner: str, writes: Writes, now: float) -> None:
    _fenced(tx, run_id, owner, now)
    _write(tx, run_id, writes)


def create_keyed_token(
    tx: Tx, run_id: str, owner: str, writes: Writes, token: TokenWrite, now: float
) -> Row | None:
    """Flush, then insert *token* unless a live token holds its key; return that one if so."""
    _fenced(tx, run_id, owner, now)
    _write(tx, run_id, writes)
    existing = tx.one(_token_by_key, {"key": token.idempotency_key})
    if existing is not None:
        expires = existing["idempotency_expires_at"]
        if expires is None or expires > now:
            return existing
        tx.execute(_forget_token_key, {"rid": existing["id"]})
    _insert_token_row(tx, token)
    return None


def pause(
    tx: Tx, run_id: str, owner: str, writes: Writes, token_id: str, now: float
) -> tuple[Committed, TokenState | None]:
    """Suspend the run on *token_id*; if the token already finished, return its state instead."""
    out = Committed()
    # A token inserted by this very commit is WAITING: no need to read (or lock) it.
    if not any(t.id == token_id for t in writes.tokens):
        _fenced(tx, run_id, owner, now)
        _write(tx, run_id, writes)
        state = tx.one(_lock_token, {"rid": token_id})
        if state is None:
            raise TokenNotFound(token_id)
        if state["status"] != "WAITING":
            return out, TokenState(str(state["status"]), values.get(tx, state["output"]))
        params = {"rid": run_id, "token": token_id, "now": now, "fence_owner": owner}
        tx.execute(_pause_run, params)  # fenced above
        if state["run_id"] != run_id:  # another run's token: list this run as a waiter
            tx.execute(_insert_wait, {"token": token_id, "rid": run_id})
    else:
        # The fence is the UPDATE's own WHERE clause; it goes first, so a run taken over
        # fails with LostOwnership before its records could clash with the new owner's.
        params = {"rid": run_id, "token": token_id, "now": now, "fence_owner": owner}
        if tx.execute(_pause_run, params) != 1:
            raise LostOwnership(run_id)
        _write(tx, run_id, writes)
    _event(tx, out, "RunPaused", run_id, now, owner, token_id)
    return out, None


def finish(
    tx: Tx,
    run_id: str,
    owner: str,
    writes: Writes,
    status: str,
    output: str | None,
    error: str | None,
    traceback: str | None,
    now: float,
) -> Committed:
    out = Committed()
    params = {
        "rid": run_id,
        "fence_owner": owner,
        "status": status,
        "output": values.put(tx, output),
        "error": error,
        "traceback": traceback,
        "now": now,
    }
    # Fenced by the UPDATE's own WHERE clause, before the records are written (see pause).
    plain = status == "COMPLETED" and error is None and traceback is None
    finishing = _complete_run if plain else _finish_run
    if tx.execute(finishing, params) != 1:
        raise LostOwnership(run_id)
    _write(tx, run_id, writes)
    if status == "COMPLETED":
        _event(tx, out, "RunCompleted", run_id, now, owner, data={"output": _small(output)})
    else:
        _event(
            tx, out, "RunFailed", run_id, now, owner, data={"error": error, "traceback": traceback}
        )
    return out


def cancel(tx: Tx, run_id: str, reason: str | None, now: float, origin: str) -> Committed:
    out = Committed()
    row = tx.one(_run_task, {"rid": run_id})
    if row is None:
        raise RunNotFound(run_id)
    if row["status"] in ("COMPLETED", "FAILED", "CANCELED"):
        out.value = str(row["status"])
        return out
    tx.execute(
        R.update()
        .where(R.c.id == run_id)
        .values(
            status="CANCELED",
            error=reason,
            owner=None,
            waiting_token_id=None,
            updated_at=now,
            finished_at=now,
        )
    )
    _event(tx, out, "RunCanceled", run_id, now, origin, data={"reason": reason})
    return out


# ---------------------------------------------------------------- tokens


OutputChecks = Mapping[str, Callable[[Any], object]]
"""The output checks of the tasks an engine knows, by task name."""


def complete_token(
    tx: Tx,
    token_id: str,
    output: str | None,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    known: Resume | None = None,
    checks: OutputChecks | None = None,
) -> Committed:
    """Compare-and-set WAITING and not yet expired → COMPLETED, and wake its run in the same
    transaction (*known*: see _wake). *checks* are run on the output first (_check_output).

    A token found WAITING past its deadline is timed out here instead, as time_out_due would,
    and committed: out.expired_at is then its deadline, and the caller reports the expiry."""
    out = Committed()
    if checks:
        _check_output(tx, token_id, output, checks, now)
    column = values.put(tx, output)
    params = {"rid": token_id, "output": column, "now": now}
    # Not UPDATE … RETURNING: SQLite buffers RETURNING rows in a temporary b-tree, which
    # costs more than reading the row back.
    if tx.execute(_complete_token, params) != 1:
        row = tx.one(_token_deadline, {"rid": token_id})
        if row is None:
            raise TokenNotFound(token_id)
        if row["status"] != "WAITING":
            raise TokenAlreadyFinished(token_id, str(row["status"]))
        values.drop(tx, column)  # this commit keeps no output
        _time_out(tx, out, token_id, row["run_id"], owner, tasks, now, origin, known)
        out.expired_at = float(row["expires_at"])
        return out
    token = tx.one(_token_row, {"rid": token_id})
    assert token is not None
    run_id = token["run_id"]
    _event(
        tx, out, "TokenCompleted", run_id or "", now, origin, token_id, {"output": _small(output)}
    )
    _wake(tx, out, token_id, run_id, owner, tasks, now, TokenState("COMPLETED", output), known)
    out.value = token
    return out


def _check_output(
    tx: Tx, token_id: str, output: str | None, checks: OutputChecks, now: float
) -> None:
    """Run the output checks of the tasks of the runs that created or wait on *token_id*;
    raise OutputRefused, before anything is written, when one of them raises. A token that
    cannot be completed (unknown, finished, expired) is left for the compare-and-set to
    report."""
    token = tx.one(_token_deadline, {"rid": token_id})
    if token is None or token["status"] != "WAITING" or token["expires_at"] <= now:
        return
    run_ids = [] if token["run_id"] is None else [str(token["run_id"])]
    run_ids += [str(r["run_id"]) for r in tx.all(_shared_waiters, {"token": token_id})]
    checked: set[str] = set()
    decoded: Any = None
    for run_id in run_ids:
        row = tx.one(_run_task, {"rid": run_id})
        if row is None or row["task"] in checked:
            continue
        name = str(row["task"])
        checked.add(name)
        check = checks.get(name)
        if check is None:
            continue
        if decoded is None:
            decoded = serde.load(output)
        try:
            check(decoded)
        except Exception as exc:  # the check's own error is the reason; BaseException passes
            raise OutputRefused(token_id, str(exc) or type(exc).__name__) from exc


def _time_out(
    tx: Tx,
    out: Committed,
    token_id: str,
    run_id: str | None,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    known: Resume | None = None,
) -> None:
    """WAITING → TIMED_OUT, and wake its run to handle the expiry."""
    if tx.execute(_time_out_token, {"rid": token_id, "now": now}) == 1:
        _event(tx, out, "TokenTimedOut", run_id or "", now, origin, token_id)
        _wake(tx, out, token_id, run_id, owner, tasks, now, TokenState("TIMED_OUT", None), known)


def time_out_due(
    tx: Tx, owner: str, tasks: frozenset[str], now: float, limit: int = 200
) -> Committed:
    """Time out every token past its deadline (up to *limit*); out.value is the next deadline."""
    out = Committed()
    for row in tx.all(_due_tokens, {"now": now, "limit": limit}):
        _time_out(tx, out, str(row["id"]), row["run_id"], owner, tasks, now, owner)
    out.value = earliest_deadline(tx)
    return out


def earliest_deadline(tx: Tx) -> float | None:
    row = tx.one(_earliest)
    return None if row is None or row["v"] is None else float(row["v"])


# ---------------------------------------------------------------- claiming and recovery


def claim_queued(
    tx: Tx, owner: str, tasks: frozenset[str], now: float, limit: int = CLAIM_BATCH
) -> Committed:
    """Claim up to *limit* QUEUED runs; out.value is how many rows were looked at."""
    out = Committed()
    rows = tx.all(_queued, {"limit": limit})
    out.value = len(rows)
    for row in rows:
        if row["task"] not in tasks:
            continue
        params = {"rid": row["id"], "from_status": "QUEUED", "owner": owner, "now": now}
        if tx.execute(_claim_run, params) == 1:
            _event(tx, out, "RunResumed", row["id"], now, owner)
            out.resumed.append(_resume(tx, str(row["id"]), None))
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
        sa.select(R.c.id, R.c.task, R.c.recoveries).where(
            R.c.status == _lit("EXECUTING"), LIVE, R.c.owner.in_(list(dead))
        )
    )
    for row in rows:
        run_id = str(row["id"])
        if row["task"] not in tasks:
            tx.execute(R.update().where(R.c.id == run_id).values(status="QUEUED", owner=None))
            continue
        if row["recoveries"] >= max_recoveries:
            error = (
                f"run was recovered {row['recoveries']} times after its engine died while "
                "executing it; it is failed to stop a crash loop"
            )
            tx.execute(
                R.update()
                .where(R.c.id == run_id)
                .values(status="FAILED", error=error, owner=None, updated_at=now, finished_at=now)
            )
            _event(
                tx, out, "RunFailed", run_id, now, owner, data={"error": error, "traceback": None}
            )
            continue
        tx.execute(
            R.update()
            .where(R.c.id == run_id)
            .values(owner=owner, recoveries=R.c.recoveries + 1, updated_at=now)
        )
        _event(tx, out, "RunResumed", run_id, now, owner)
        out.resumed.append(_resume(tx, run_id, None))
    return out


def register_engine(tx: Tx, row: dict[str, Any]) -> None:
    tx.execute(schema.engines.insert().values(**row))
    tx.registry_changed()


def heartbeat(tx: Tx, engine_id: str, now: float) -> None:
    tx.execute(
        schema.engines.update().where(schema.engines.c.id == engine_id).values(heartbeat_at=now)
    )


def live_engines(tx: Tx) -> list[Row]:
    en = schema.engines
    return tx.all(sa.select(en).where(en.c.stopped_at.is_(None)))


def owners_of_executing(tx: Tx) -> list[str]:
    rows = tx.all(sa.select(R.c.owner).where(R.c.status == _lit("EXECUTING"), LIVE).distinct())
    return [str(r["owner"]) for r in rows if r["owner"] is not None]


def mark_engines_stopped(tx: Tx, engine_ids: Iterable[str], now: float) -> None:
    ids = list(engine_ids)
    if ids:
        en = schema.engines
        tx.execute(
            en.update().where(en.c.id.in_(ids), en.c.stopped_at.is_(None)).values(stopped_at=now)
        )
        tx.registry_changed()


def release(tx: Tx, engine_id: str, now: float) -> None:
    """A clean stop: hand back the runs this engine was executing, and sign off."""
    tx.execute(
        R.update()
        .where(R.c.owner == engine_id, R.c.status == _lit("EXECUTING"), LIVE)
        .values(status="QUEUED", owner=None, updated_at=now)
    )
    mark_engines_stopped(tx, [engine_id], now)


# ---------------------------------------------------------------- the event log


def events_after(tx: Tx, after: int, origin: str) -> list[EventRow]:
    return [
        EventRow(
            int(r["id"]),
            float(r["at"]),
            str(r["origin"]),
            str(r["kind"]),
            str(r["run_id"]),
            r["token_id"],
            r["data"],
        )
        for r in tx.all(_events_after, {"after": after, "origin": origin})
    ]


def last_event_id(tx: Tx) -> int:
    row = tx.one(_last_event)
    return 0 if row is None or row["v"] is None else int(row["v"])


def prune_events(tx: Tx, before: float) -> None:
    tx.execute(E.delete().where(E.c.at < before))


# ---------------------------------------------------------------- reads


def get_run(tx: Tx, run_id: str) -> tuple[Row, str | None, str | None]:
    row = tx.one(_run_row, {"rid": run_id})
    if row is None:
        raise RunNotFound(run_id)
    return row, values.get(tx, row["payload"]), values.get(tx, row["output"])


def list_runs(
    tx: Tx, status: str | None, task: str | None, limit: int, before: float | None
) -> list[tuple[Row, str | None, str | None]]:
    q = sa.select(R).order_by(R.c.created_at.desc()).limit(limit)
    if status == "EXECUTING":  # the few runs executing now: a scan, see ix_hitl_runs_idle
        q = q.where(R.c.status == _lit(status), LIVE)
    elif status in schema.LIVE_STATUSES:
        q = q.where(R.c.status == _lit(status), IDLE)
    elif status is not None:
        q = q.where(R.c.status == status)
    if task is not None:
        q = q.where(R.c.task == task)
    if before is not None:
        q = q.where(R.c.created_at < before)
    return [(r, values.get(tx, r["payload"]), values.get(tx, r["output"])) for r in tx.all(q)]


def get_token(tx: Tx, token_id: str) -> tuple[Row, str | None]:
    row = tx.one(_token_row, {"rid": token_id})
    if row is None:
        raise TokenNotFound(token_id)
    return row, values.get(tx, row["output"])


def list_tokens(
    tx: Tx, status: str | None, tags: Sequence[str], run_id: str | None, limit: int
) -> list[tuple[Row, str | None]]:
    q = sa.select(T).order_by(T.c.created_at.desc()).limit(limit)
    if status == "WAITING":
        q = q.where(WAITING)
    elif status is not None:
        q = q.where(T.c.status == status)
    if run_id is not None:
        # No index on run_id: the run's history names its tokens, each one a key lookup.
        named = [
            serde.load(values.get(tx, r["result"]))["id"]
            for r in tx.all(_token_steps_of, {"rid": run_id})
            if r["result"] is not None
        ]
        if not named:
            return []
        q = q.where(T.c.id.in_(named), T.c.run_id == run_id)
    for tag in tags:  # every tag must be present
        tt = schema.token_tags
        q = q.where(sa.exists().where(tt.c.token_id == T.c.id, tt.c.tag == tag))
    return [(r, values.get(tx, r["output"])) for r in tx.all(q)]


def get_steps(tx: Tx, run_id: str) -> list[tuple[Row, str | None]]:
    if tx.one(_run_task, {"rid": run_id}) is None:
        raise RunNotFound(run_id)
    return [(r, values.get(tx, r["result"])) for r in tx.all(_steps_of, {"rid": run_id})]


def count_runs(tx: Tx) -> dict[str, int]:
    rows = tx.all(sa.select(R.c.status, sa.func.count().label("n")).group_by(R.c.status))
    return {str(r["status"]): int(r["n"]) for r in rows}
