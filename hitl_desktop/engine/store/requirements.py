"""A review token's requirement (who may decide, how many must approve) and the verdicts
recorded on it. Written when the token is created, read where a decision commits."""

from __future__ import annotations

import sqlalchemy as sa

from .. import serde
from ..models import Overdue, Requirement, TokenStatus, Verdict, to_datetime
from . import schema
from .statements import TOKEN_STATE
from .tx import Prepared, Row, Tx

REQUIREMENTS, VERDICTS, TOKENS = schema.requirements, schema.verdicts, schema.tokens

_insert = Prepared(
    REQUIREMENTS.insert().from_select(
        [
            "token_id",
            "rule",
            "approvals",
            "approvers",
            "self_approval",
            "remind_at",
            "escalate_to",
            "seen",
            "requester",
        ],
        # The requester is the run's creator as the store recorded it, never a client's word.
        sa.select(
            sa.bindparam("token_id", type_=sa.String),
            sa.bindparam("rule", type_=sa.String),
            sa.bindparam("approvals", type_=sa.Integer),
            sa.bindparam("approvers", type_=sa.String),
            sa.bindparam("self_approval", type_=sa.Integer),
            sa.bindparam("remind_at", type_=sa.Float),
            sa.bindparam("escalate_to", type_=sa.String),
            sa.bindparam("seen", type_=sa.String),
            schema.runs.c.created_by,
        ).where(schema.runs.c.id == sa.bindparam("run_id")),
    )
)
_select = Prepared(
    sa.select(REQUIREMENTS, TOKENS.c.created_at)
    .join(TOKENS, TOKENS.c.id == REQUIREMENTS.c.token_id)
    .where(REQUIREMENTS.c.token_id == sa.bindparam("rid"))
)
_token_and_requirement = Prepared(
    sa.select(*TOKEN_STATE, REQUIREMENTS)
    .outerjoin(REQUIREMENTS, REQUIREMENTS.c.token_id == TOKENS.c.id)
    .where(TOKENS.c.id == sa.bindparam("rid"))
)
_verdicts = Prepared(
    sa.select(VERDICTS)
    .where(VERDICTS.c.token_id == sa.bindparam("rid"))
    .order_by(VERDICTS.c.at, VERDICTS.c.reviewer)
)
insert_verdict = Prepared(
    VERDICTS.insert().values({c.name: sa.bindparam(c.name) for c in VERDICTS.c})
)
_overdue = Prepared(
    sa.select(
        REQUIREMENTS,
        TOKENS.c.run_id,
        TOKENS.c.created_at,
        sa.select(sa.func.count())
        .where(VERDICTS.c.token_id == REQUIREMENTS.c.token_id, VERDICTS.c.approve == 1)
        .scalar_subquery()
        .label("approved"),
    )
    .join(TOKENS, TOKENS.c.id == REQUIREMENTS.c.token_id)
    .where(
        REQUIREMENTS.c.remind_at <= sa.bindparam("now"),
        TOKENS.c.status == TokenStatus.WAITING.value,
    )
    .order_by(REQUIREMENTS.c.remind_at)
    .limit(sa.bindparam("limit"))
)


def insert(tx: Tx, token_id: str, run_id: str | None, req: Requirement, created_at: float) -> None:
    remind_at = None if req.remind_after is None else created_at + req.remind_after
    params = {
        "token_id": token_id,
        "run_id": run_id,
        "rule": req.rule,
        "approvals": req.approvals,
        "approvers": serde.encode(list(req.approvers)),
        "self_approval": int(req.self_approval),
        "remind_at": remind_at,
        "escalate_to": serde.encode(list(req.escalate_to)),
        "seen": req.seen,
    }
    if tx.execute(_insert, params) != 1:
        raise LookupError(f"token {token_id}'s run {run_id} is not in the store")


def get(tx: Tx, token_id: str) -> Requirement | None:
    row = tx.one(_select, {"rid": token_id})
    if row is None:
        return None
    return requirement(row)


def token_and_requirement(tx: Tx, token_id: str) -> tuple[Row, Requirement | None] | None:
    """The token's status, deadline, run and completion, and its requirement, in one read (a
    decision's first statement); None for an unknown token."""
    row = tx.one(_token_and_requirement, {"rid": token_id})
    if row is None:
        return None
    return row, None if row["token_id"] is None else requirement(row)


def _names(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(serde.load(text))


def requirement(row: Row) -> Requirement:
    remind_at, created_at = row["remind_at"], float(str(row["created_at"]))
    return Requirement(
        rule=None if row["rule"] is None else str(row["rule"]),
        approvals=int(str(row["approvals"])),
        approvers=_names(str(row["approvers"])),
        self_approval=bool(row["self_approval"]),
        remind_after=None if remind_at is None else float(str(remind_at)) - created_at,
        escalate_to=_names(str(row["escalate_to"])),
        seen=None if row["seen"] is None else str(row["seen"]),
        requester=None if row["requester"] is None else str(row["requester"]),
    )


def verdicts(tx: Tx, token_id: str) -> tuple[Verdict, ...]:
    out = []
    for r in tx.all(_verdicts, {"rid": token_id}):
        at = to_datetime(r["at"])
        assert at is not None
        out.append(
            Verdict(str(r["reviewer"]), bool(r["approve"]), at, serde.load(r["output"]), r["seen"])
        )
    return tuple(out)


def overdue(tx: Tx, now: float, limit: int) -> list[Overdue]:
    out = []
    for r in tx.all(_overdue, {"now": now, "limit": limit}):
        since = to_datetime(r["created_at"])
        assert since is not None
        out.append(
            Overdue(
                token_id=str(r["token_id"]),
                run_id=r["run_id"],
                rule=r["rule"],
                waiting_since=since,
                escalate_to=tuple(serde.load(r["escalate_to"])),
                approvals=int(r["approved"]),
                needed=int(r["approvals"]),
            )
        )
    return out


_waiting = Prepared(
    sa.select(
        TOKENS.c.id,
        TOKENS.c.created_at,
        REQUIREMENTS,
        sa.select(VERDICTS.c.approve)
        .where(VERDICTS.c.token_id == TOKENS.c.id, VERDICTS.c.reviewer == sa.bindparam("me"))
        .scalar_subquery()
        .label("mine"),
        sa.select(VERDICTS.c.at)
        .where(VERDICTS.c.token_id == TOKENS.c.id, VERDICTS.c.reviewer == sa.bindparam("me"))
        .scalar_subquery()
        .label("mine_at"),
    )
    .select_from(TOKENS.outerjoin(REQUIREMENTS, REQUIREMENTS.c.token_id == TOKENS.c.id))
    .where(TOKENS.c.status == TokenStatus.WAITING.value, TOKENS.c.expires_at > sa.bindparam("now"))
    .order_by(TOKENS.c.expires_at)
    .limit(sa.bindparam("limit"))
)


def waiting(tx: Tx, me: str, now: float, limit: int) -> list[tuple[str, Requirement | None, Row]]:
    """The waiting tokens (soonest deadline first) with their requirement, if any, and their
    row (created_at; *me*'s verdict on it as mine / mine_at)."""
    rows = tx.all(_waiting, {"me": me, "now": now, "limit": limit})
    return [(str(r["id"]), None if r["token_id"] is None else requirement(r), r) for r in rows]
