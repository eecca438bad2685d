"""A run's records in the store: writing what it produced, fencing it, reading it back for
replay, and waking it when the token it waits on finishes.

Runs are fenced by `owner`: a body that writes on behalf of an executing run checks, in the
same transaction, that this engine still owns it, and raises LostOwnership otherwise, which
rolls back everything the body wrote. An engine that was wrongly presumed dead cannot write
over the one that took its runs over.
"""

from __future__ import annotations

from .. import serde
from ..models import TOKEN_STATUSES, RunStatus, TokenStatus
from . import requirements, values
from . import statements as sql
from .event_log import announce
from .records import Committed, Recorded, Resume, TokenState, TokenWrite, Writes
from .tx import Row, Tx


class LostOwnership(Exception):
    """Another engine took this run over (we were presumed dead); our writes are refused."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} is now owned by another engine; this engine stops executing it"
        )
        self.run_id = run_id


def fence(tx: Tx, run_id: str, owner: str, now: float) -> None:
    if tx.execute(sql.fence, {"rid": run_id, "fence_owner": owner, "now": now}) != 1:
        raise LostOwnership(run_id)


def write_records(tx: Tx, run_id: str, writes: Writes) -> None:
    if writes.steps:
        ok = all(s.error is None for s in writes.steps)
        tx.execute_many(
            sql.insert_step_ok if ok else sql.insert_step,
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
        insert_token(tx, token)


def insert_token(tx: Tx, token: TokenWrite) -> None:
    tx.execute(
        sql.insert_token if token.idempotency_key is not None else sql.insert_unkeyed_token,
        {
            "id": token.id,
            "run_id": token.run_id,
            "status": TokenStatus.WAITING.value,  # a str: pysqlite binds a str subclass slowly
            "tags": serde.encode(token.tags) if token.tags else "[]",
            "idempotency_key": token.idempotency_key,
            "idempotency_expires_at": token.idempotency_expires_at,
            "created_at": token.created_at,
            "expires_at": token.expires_at,
        },
    )
    if token.tags:
        tx.execute_many(sql.insert_tag, [{"tag": t, "token_id": token.id} for t in token.tags])
    if token.requirement is not None:
        requirements.insert(tx, token.id, token.run_id, token.requirement, token.created_at)
    if token.group is not None:
        mode, members = token.group
        tx.execute_many(
            sql.insert_member,
            [
                {"group_id": token.id, "position": i, "token_id": t, "mode": mode}
                for i, t in enumerate(members)
            ],
        )


def token_state(tx: Tx, row: Row) -> TokenState:
    return TokenState(TOKEN_STATUSES[row["status"]], values.get(tx, row["output"]))


def resume(
    tx: Tx,
    run_id: str,
    token_id: str | None,
    run: Row | None = None,
    state: TokenState | None = None,
) -> Resume:
    """What replaying *run_id* needs; *run* is its row (task and payload) when already read,
    *state* that of *token_id* when this transaction just finished it."""
    if run is None:
        run = tx.one(sql.run_row, {"rid": run_id})
        assert run is not None
    steps = {
        int(r["position"]): Recorded(
            str(r["kind"]), str(r["name"]), bool(r["ok"]), values.get(tx, r["result"]), r["error"]
        )
        for r in tx.all(sql.steps_of, {"rid": run_id})
    }
    tokens = {} if token_id is None or state is None else {token_id: state}
    # The history names every token the run created or was handed (a "token" record each),
    # and a wait for any / all its members: when the one just finished is the only one (the
    # usual run), there is nothing to read.
    named = []
    for r in steps.values():
        if r.kind == "token" and r.result:
            info = serde.load(r.result)
            named.append(info["id"])
            named += info.get("members", ())
    if token_id is not None:
        named.append(token_id)  # a token another run created and this one waited on
    for named_id in named:
        if named_id not in tokens:
            row = tx.one(sql.token_status, {"rid": named_id})
            if row is not None:
                tokens[named_id] = token_state(tx, row)
    return Resume(run_id, str(run["task"]), values.get(tx, run["payload"]), steps, tokens, token_id)


def wake(
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
    shared = tx.all(sql.shared_waiters, {"token": token_id})
    if shared:
        candidates += [str(r["run_id"]) for r in shared if r["run_id"] != creator]
        tx.execute(sql.forget_waits, {"token": token_id})
    for candidate in candidates:
        kept = known if known is not None and known.run_id == candidate else None
        if kept is not None:
            row: Row | None = {"task": kept.task}
        else:
            row = tx.one(sql.waiter, {"rid": candidate, "token": token_id})
        if row is None:  # not waiting on it (any more)
            continue
        claim = owner is not None and row["task"] in tasks
        params = {
            "rid": candidate,
            "token": token_id,
            "status": (RunStatus.EXECUTING if claim else RunStatus.QUEUED).value,
            "owner": owner if claim else None,
            "now": now,
        }
        if tx.execute(sql.wake_run, params) == 1 and claim:
            assert owner is not None
            announce(tx, out, "RunResumed", candidate, now, owner, token_id)
            if kept is not None:
                tokens = {**kept.tokens, token_id: state}
                history = Resume(candidate, kept.task, kept.payload, kept.steps, tokens, token_id)
            else:
                history = resume(tx, candidate, token_id, row, state)
            out.resumed.append(history)
