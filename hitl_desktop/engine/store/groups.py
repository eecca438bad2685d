"""Waits for any / all of several tokens (wait.for_any, wait.for_all) as rows.

A group is a token of its own, created by its run with its members listed in
hitl_group_members; the run pauses on it as on any token. Whenever a member leaves WAITING
(completed, decided, timed out), the groups holding it are settled in the same transaction:
a for_any group completes, a for_all group completes once no member is WAITING, and the
group's run is woken as for any token (history.wake). The group token's output is a snapshot
of every member's state at that moment, so a replay sees the same results whatever happens to
the members later; a group whose own deadline passes times out with a snapshot too.

On PostgreSQL a decision is recorded by the store's function hitl_decide, which settles groups
with hitl_settle_groups (postgres.py): the same rules, in SQL, for reviewers who may not write
these tables.

Lock order: the member token, then its groups' tokens by id, then run rows. A group's members
are read after its token is locked, so two members finishing at once in two transactions
settle the group once, in whichever commits second.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import bindparam

from .. import serde
from ..errors import TokenNotFound
from ..models import TOKEN_STATUSES, TokenStatus
from . import schema
from . import statements as sql
from .event_log import announce, small
from .history import wake
from .records import Committed, TokenState
from .tx import Prepared, Row, Tx

PREFIX = "grp_"
"""Group tokens' ids start so: no other token's do (serde.new_id("tok"))."""
MAX_MEMBERS = 100

MEMBERS, TOKENS = schema.group_members, schema.tokens

_holding = Prepared(
    sa.select(MEMBERS.c.group_id, MEMBERS.c.mode)
    .where(MEMBERS.c.token_id == bindparam("token"))
    .distinct()
    .order_by(MEMBERS.c.group_id)
)
_MEMBER_STATE = (
    MEMBERS.c.token_id,
    MEMBERS.c.position,
    MEMBERS.c.mode,
    TOKENS.c.status,
    TOKENS.c.completed_at,
)
_JOINED = MEMBERS.join(TOKENS, TOKENS.c.id == MEMBERS.c.token_id)
_members = Prepared(
    sa.select(*_MEMBER_STATE)
    .select_from(_JOINED)
    .where(MEMBERS.c.group_id == bindparam("group"))
    .order_by(MEMBERS.c.position)
)
# At the pause: the members' rows locked (by id, the lock order), so that a member finishing
# meanwhile either committed before (and is seen finished) or waits for the pause's commit
# (and then finds the group).
_members_locked = Prepared(
    sa.select(*_MEMBER_STATE)
    .select_from(_JOINED)
    .where(MEMBERS.c.group_id == bindparam("group"))
    .order_by(MEMBERS.c.token_id)
    .with_for_update(of=TOKENS)
)
_member_ids = Prepared(
    sa.select(MEMBERS.c.token_id).where(MEMBERS.c.group_id == bindparam("group"))
)
_lock_group = Prepared(
    sa.select(TOKENS.c.status, TOKENS.c.run_id, TOKENS.c.expires_at)
    .where(TOKENS.c.id == bindparam("rid"))
    .with_for_update()
)
_finish_group = Prepared(
    TOKENS.update()
    .where(TOKENS.c.id == bindparam("rid"), TOKENS.c.status == TokenStatus.WAITING)
    .values(
        status=bindparam("status"),
        output=bindparam("output"),
        completed_at=bindparam("now"),
        completed_by=bindparam("by"),  # PostgreSQL's trigger puts the session's role here
    )
)


def is_group(token_id: str) -> bool:
    return token_id.startswith(PREFIX)


def snapshot(rows: Sequence[Row], timed_out: bool) -> str:
    """The group token's output: each member's state now, in the order the run gave them."""
    ordered = sorted(rows, key=lambda r: int(r["position"]))
    members = [
        {
            "token_id": str(r["token_id"]),
            "status": str(r["status"]),
            "completed_at": None if r["completed_at"] is None else float(r["completed_at"]),
        }
        for r in ordered
    ]
    return serde.encode({"timed_out": timed_out, "members": members})


def _settled(rows: Sequence[Row]) -> bool:
    finished = [r["status"] != TokenStatus.WAITING for r in rows]
    return any(finished) if rows[0]["mode"] == "any" else all(finished)


def at_pause(
    tx: Tx, group_id: str, run_id: str, now: float, origin: str, by: str, out: Committed
) -> TokenState | None:
    """Before *run_id* pauses on *group_id*: if its members settle it already, complete it
    now and return its state (the run goes on without pausing). TokenNotFound names a member
    that does not exist."""
    rows = tx.all(_members_locked, {"group": group_id})
    expected = [str(r["token_id"]) for r in tx.all(_member_ids, {"group": group_id})]
    if len(rows) != len(expected):
        found = {str(r["token_id"]) for r in rows}
        raise TokenNotFound(next(t for t in expected if t not in found))
    if not _settled(rows):
        return None
    text = snapshot(rows, False)
    params = {"rid": group_id, "status": "COMPLETED", "output": text, "now": now, "by": by}
    if tx.execute(_finish_group, params) != 1:  # finished already: read what it recorded
        row = tx.one(sql.token_status, {"rid": group_id})
        assert row is not None
        return TokenState(TOKEN_STATUSES[row["status"]], row["output"])
    announce(tx, out, "TokenCompleted", run_id, now, origin, group_id, {"output": small(text)})
    return TokenState(TokenStatus.COMPLETED, text)


def settle(
    tx: Tx,
    out: Committed,
    member_id: str,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    by: str,
) -> None:
    """*member_id* just left WAITING in this transaction: settle the groups holding it."""
    for holding in tx.all(_holding, {"token": member_id}):
        group_id = str(holding["group_id"])
        group = tx.one(_lock_group, {"rid": group_id})
        if group is None or group["status"] != TokenStatus.WAITING:
            continue
        rows = tx.all(_members, {"group": group_id})  # read after the lock: see its docstring
        expired = float(group["expires_at"]) <= now
        if expired or _settled(rows):
            finish(tx, out, group_id, group["run_id"], rows, expired, owner, tasks, now, origin, by)


def time_out(
    tx: Tx,
    out: Committed,
    group_id: str,
    run_id: str | None,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    by: str,
) -> None:
    """The group's own deadline passed: time it out with the members' states now."""
    rows = tx.all(_members, {"group": group_id})
    finish(tx, out, group_id, run_id, rows, True, owner, tasks, now, origin, by)


def finish(
    tx: Tx,
    out: Committed,
    group_id: str,
    run_id: str | None,
    rows: Sequence[Row],
    timed_out: bool,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    by: str,
) -> None:
    status = TokenStatus.TIMED_OUT if timed_out else TokenStatus.COMPLETED
    text = snapshot(rows, timed_out)
    params = {
        "rid": group_id,
        "status": status.value,
        "output": text,
        "now": now,
        "by": None if timed_out else by,
    }
    if tx.execute(_finish_group, params) != 1:
        return
    kind = "TokenTimedOut" if timed_out else "TokenCompleted"
    data = None if timed_out else {"output": small(text)}
    announce(tx, out, kind, run_id or "", now, origin, group_id, data)
    wake(tx, out, group_id, run_id, owner, tasks, now, TokenState(status, text))


def finished_groups(tx: Tx, member_id: str) -> list[tuple[str, str | None, TokenState]]:
    """The groups holding *member_id* that have finished: (id, run id, state)."""
    found = []
    for holding in tx.all(_holding, {"token": member_id}):
        group_id = str(holding["group_id"])
        row = tx.one(sql.token_row, {"rid": group_id})
        if row is not None and row["status"] != TokenStatus.WAITING:
            state = TokenState(TOKEN_STATUSES[row["status"]], row["output"])
            found.append((group_id, row["run_id"], state))
    return found
