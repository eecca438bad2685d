"""Transactions on waitpoint tokens: completion (compare-and-set, then wake the waiting runs in
the same transaction), time-outs, and reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from .. import serde
from ..errors import DecisionRefused, OutputRefused, TokenAlreadyFinished, TokenNotFound
from ..models import TOKEN_STATUSES, Token, TokenStatus
from . import audit, groups, requirements, values
from . import statements as sql
from .event_log import announce, small
from .history import wake
from .records import Committed, Completion, Resume, TimedOut, TokenState
from .rows import token_record
from .tx import Tx

TOKENS = sql.TOKENS

GROUP_REFUSAL = "it is a wait for any / all of other tokens: it finishes when they do"

OutputChecks = Mapping[str, Callable[[Any], object]]
"""The output checks of the tasks an engine knows, by task name."""


def complete(
    tx: Tx,
    token_id: str,
    output: str | None,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    by: str,
    known: Resume | None = None,
    checks: OutputChecks | None = None,
    audited: frozenset[str] = frozenset(),
    out: Completion | None = None,
    entry: str | None = None,
) -> Completion:
    """Compare-and-set WAITING and not yet expired → COMPLETED, and wake its run in the same
    transaction (*known*: see history.wake). *checks* are run on the output first. *by* is
    who completes it: recorded on SQLite; PostgreSQL records the session's role instead.

    A token found WAITING past its deadline is timed out here instead, as time_out_due would,
    and committed: out.expired_at is then its deadline, and the caller reports the expiry.
    A review's token (one with a requirement) is decided through reviews.decide, which passes
    the audit *entry* (a Decision's data) it records instead of TokenCompleted's.
    The groups (waits for any / all) holding the token are settled in the same transaction."""
    if groups.is_group(token_id):
        raise DecisionRefused(token_id, GROUP_REFUSAL)
    if out is None:
        out = Completion()
        if requirements.get(tx, token_id) is not None:
            raise DecisionRefused(
                token_id, "it is a review under an approval requirement: decide it instead"
            )
    if checks:
        check_output(tx, token_id, output, checks, now)
    column = values.put(tx, output)
    params = {"rid": token_id, "output": column, "now": now, "by": by}
    # Not UPDATE … RETURNING: SQLite buffers RETURNING rows in a temporary b-tree, which
    # costs more than reading the row back.
    if tx.execute(sql.complete_token, params) != 1:
        row = tx.one(sql.token_deadline, {"rid": token_id})
        if row is None:
            raise TokenNotFound(token_id)
        if row["status"] != TokenStatus.WAITING:
            raise TokenAlreadyFinished(
                token_id, str(row["status"]), row["completed_by"], row["completed_at"]
            )
        values.drop(tx, column)  # this commit keeps no output
        run_id = row["run_id"]
        time_out(tx, out, token_id, run_id, owner, tasks, now, origin, by, audited, known)
        out.expired_at = float(row["expires_at"])
        return out
    token = tx.one(sql.token_row, {"rid": token_id})
    assert token is not None
    run_id = token["run_id"]
    data = {"output": small(output)}
    announce(tx, out, "TokenCompleted", run_id or "", now, origin, token_id, data)
    if entry is not None:
        audit.append(tx, "Decision", run_id, token_id, entry, by, now)
    elif audited and _task_of(tx, run_id, known) in audited:
        audit.append(tx, "TokenCompleted", run_id, token_id, output, by, now)
    state = TokenState(TokenStatus.COMPLETED, output)
    wake(tx, out, token_id, run_id, owner, tasks, now, state, known)
    groups.settle(tx, out, token_id, owner, tasks, now, origin, by)
    out.row, out.output = token, output
    return out


def check_output(
    tx: Tx, token_id: str, output: str | None, checks: OutputChecks, now: float
) -> None:
    """Run the output checks of the tasks of the runs that created or wait on *token_id*;
    raise OutputRefused, before anything is written, when one of them raises. A token that
    cannot be completed (unknown, finished, expired) is left for the compare-and-set to
    report."""
    token = tx.one(sql.token_deadline, {"rid": token_id})
    if token is None or token["status"] != TokenStatus.WAITING or token["expires_at"] <= now:
        return
    run_ids = [] if token["run_id"] is None else [str(token["run_id"])]
    run_ids += [str(r["run_id"]) for r in tx.all(sql.shared_waiters, {"token": token_id})]
    checked: set[str] = set()
    decoded: Any = None
    for run_id in run_ids:
        row = tx.one(sql.run_task, {"rid": run_id})
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


def time_out(
    tx: Tx,
    out: Committed,
    token_id: str,
    run_id: str | None,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    actor: str,
    audited: frozenset[str],
    known: Resume | None = None,
) -> None:
    """WAITING → TIMED_OUT, and wake its run to handle the expiry (and settle the groups
    holding it). A group times out with its members' states (groups.py)."""
    if groups.is_group(token_id):
        groups.time_out(tx, out, token_id, run_id, owner, tasks, now, origin, actor)
        return
    if tx.execute(sql.time_out_token, {"rid": token_id, "now": now}) == 1:
        announce(tx, out, "TokenTimedOut", run_id or "", now, origin, token_id)
        if audited and _task_of(tx, run_id, known) in audited:
            audit.append(tx, "TokenTimedOut", run_id, token_id, None, actor, now)
        state = TokenState(TokenStatus.TIMED_OUT, None)
        wake(tx, out, token_id, run_id, owner, tasks, now, state, known)
        groups.settle(tx, out, token_id, owner, tasks, now, origin, actor)


def time_out_due(
    tx: Tx,
    owner: str,
    tasks: frozenset[str],
    now: float,
    actor: str,
    audited: frozenset[str] = frozenset(),
    limit: int = 200,
) -> TimedOut:
    """Time out every token past its deadline (up to *limit*)."""
    out = TimedOut()
    for row in tx.all(sql.due_tokens, {"now": now, "limit": limit}):
        token_id, run_id = str(row["id"]), row["run_id"]
        time_out(tx, out, token_id, run_id, owner, tasks, now, owner, actor, audited)
    out.next_deadline = earliest_deadline(tx)
    return out


def _task_of(tx: Tx, run_id: str | None, known: Resume | None) -> str | None:
    if run_id is None:
        return None
    if known is not None and known.run_id == run_id:
        return known.task
    row = tx.one(sql.run_task, {"rid": run_id})
    return None if row is None else str(row["task"])


def earliest_deadline(tx: Tx) -> float | None:
    row = tx.one(sql.earliest)
    return None if row is None or row["v"] is None else float(row["v"])


# ---------------------------------------------------------------- reads


def get_token(tx: Tx, token_id: str) -> Token:
    row = tx.one(sql.token_row, {"rid": token_id})
    if row is None:
        raise TokenNotFound(token_id)
    token = token_record(row, values.get(tx, row["output"]))
    requirement = requirements.get(tx, token_id)
    if requirement is None:
        return token
    return replace(token, requirement=requirement, verdicts=requirements.verdicts(tx, token_id))


def states(tx: Tx, token_ids: Sequence[str]) -> dict[str, TokenState]:
    """The states of the tokens that exist among *token_ids*."""
    found = {}
    for token_id in token_ids:
        row = tx.one(sql.token_status, {"rid": token_id})
        if row is not None:
            found[token_id] = TokenState(
                TOKEN_STATUSES[row["status"]], values.get(tx, row["output"])
            )
    return found


def list_tokens(
    tx: Tx, status: TokenStatus | None, tags: Sequence[str], run_id: str | None, limit: int
) -> list[Token]:
    q = sa.select(TOKENS).order_by(TOKENS.c.created_at.desc()).limit(limit)
    if status == TokenStatus.WAITING:
        q = q.where(sql.WAITING)
    elif status is not None:
        q = q.where(TOKENS.c.status == status.value)
    if run_id is not None:
        # No index on run_id: the run's history names its tokens, each one a key lookup.
        named = [
            serde.load(values.get(tx, r["result"]))["id"]
            for r in tx.all(sql.token_steps_of, {"rid": run_id})
            if r["result"] is not None
        ]
        if not named:
            return []
        q = q.where(TOKENS.c.id.in_(named), TOKENS.c.run_id == run_id)
    for tag in tags:  # every tag must be present
        tt = sql.TOKEN_TAGS
        q = q.where(sa.exists().where(tt.c.token_id == TOKENS.c.id, tt.c.tag == tag))
    return [token_record(r, values.get(tx, r["output"])) for r in tx.all(q)]
