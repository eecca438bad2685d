"""Deciding a review's token: the requirement fixed at its creation is checked in the same
transaction that records the verdict and, once enough reviewers approved (or one rejected),
completes the token. This is the SQLite path; on PostgreSQL the store's own function
hitl_decide (postgres.py) does the same as its owner, so that a reviewer's role needs no
right to write the engine's tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import serde
from ..errors import DecisionRefused, TokenAlreadyFinished, TokenNotFound
from ..models import Requirement, Token, TokenStatus, Verdict, to_datetime
from . import audit, groups, requirements, tokens
from . import statements as sql
from .event_log import announce
from .records import Completion, Resume
from .rows import token_record
from .tokens import OutputChecks
from .tx import Tx

ANYONE = Requirement()
"""A token without a requirement: one approval by anyone decides it."""


@dataclass(slots=True)
class Decision(Completion):
    approvals: int = 0
    """Approvals recorded so far, this one included."""
    needed: int = 1
    final: bool = False
    """This decision completed the token."""
    requirement: Requirement | None = None
    verdicts: tuple[Verdict, ...] = ()
    """Every verdict on the token, this one included (with out.row: the token as decided)."""

    def token(self) -> Token:
        """The token as decided, with its requirement and verdicts."""
        assert self.row is not None
        return token_record(self.row, self.output, self.requirement, self.verdicts)


def verdict_of(token_id: str, output: str | None) -> tuple[bool, Any]:
    """(approve, the decision) from a decision's JSON text; DecisionRefused otherwise."""
    data = serde.load(output)
    verdict = data.get("decision") if isinstance(data, dict) else None
    if verdict not in ("approve", "reject"):
        raise DecisionRefused(
            token_id, 'a decision is a JSON object whose "decision" is "approve" or "reject"'
        )
    return verdict == "approve", data


def refusal(
    req: Requirement,
    who: str,
    roles: frozenset[str],
    approve: bool,
    decision: Any,
    seen: str | None,
    overdue: bool,
    earlier: tuple[bool, float] | None,
    approved: int,
) -> str | None:
    """Why *who*, acting with *roles* (its own name among them), may not make this decision
    under *req*, or None (SQLite's check, and what waiting_for reads; the PostgreSQL
    function words the same refusals)."""
    rule = "no rule" if req.rule is None else f"rule '{req.rule}'"
    allowed = req.approvers + (req.escalate_to if overdue else ())
    if req.approvers and not roles.intersection(allowed):
        also = ""
        if req.escalate_to and not overdue:
            also = f" ({', '.join(req.escalate_to)} once it is overdue)"
        return (
            f"{who} may not decide under {rule}: it needs one of {', '.join(req.approvers)}{also}"
        )
    if approve and not req.self_approval and who == req.requester:
        return f"{who} requested this change and {rule} does not allow self-approval"
    if earlier is not None:
        did = "approved" if earlier[0] else "rejected"
        at = datetime.fromtimestamp(earlier[1], UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"{who} already {did} it at {at} ({approved} of {req.approvals} approvals so far): "
            "each reviewer decides once"
        )
    if approve and req.approvals > 1 and decision.get("edits"):
        return (
            f"{rule} needs {req.approvals} approvals of the same change: edits are not "
            "allowed (reject it with a comment instead)"
        )
    if req.seen is not None and seen != req.seen:
        shown = "no diff" if seen is None else f"diff {seen[:12]}"
        return (
            f"it was decided on {shown}, but the change waiting is diff {req.seen[:12]}: "
            "reload the review"
        )
    return None


def decide(
    tx: Tx,
    token_id: str,
    output: str | None,
    seen: str | None,
    owner: str | None,
    tasks: frozenset[str],
    now: float,
    origin: str,
    by: str,
    known: Resume | None = None,
    checks: OutputChecks | None = None,
    audited: frozenset[str] = frozenset(),
) -> Decision:
    """Record *by*'s decision on *token_id* (see the module's docstring)."""
    out = Decision()
    if groups.is_group(token_id):
        raise DecisionRefused(token_id, tokens.GROUP_REFUSAL)
    read = requirements.token_and_requirement(tx, token_id)
    if read is None:
        raise TokenNotFound(token_id)
    row, found = read
    if row["status"] != TokenStatus.WAITING:
        raise TokenAlreadyFinished(
            token_id, str(row["status"]), row["completed_by"], row["completed_at"]
        )
    run_id = row["run_id"]
    if row["expires_at"] <= now:
        tokens.time_out(tx, out, token_id, run_id, owner, tasks, now, origin, by, audited, known)
        out.expired_at = float(row["expires_at"])
        return out
    if checks:
        tokens.check_output(tx, token_id, output, checks, now)
    approve, decision = verdict_of(token_id, output)
    req = found or ANYONE
    overdue = req.remind_after is not None and now >= row["created_at"] + req.remind_after
    # With one approval needed, any verdict finished the token: there is none before this one.
    earlier_verdicts = requirements.verdicts(tx, token_id) if req.approvals > 1 else ()
    mine = next((v for v in earlier_verdicts if v.reviewer == by), None)
    earlier = None if mine is None else (mine.approve, mine.at.timestamp())
    approved = sum(v.approve for v in earlier_verdicts)
    roles = frozenset({by})
    reason = refusal(req, by, roles, approve, decision, seen, overdue, earlier, approved)
    if reason is not None:
        raise DecisionRefused(token_id, reason)
    verdict = {"token_id": token_id, "reviewer": by, "approve": int(approve), "at": now}
    tx.execute(requirements.insert_verdict, {**verdict, "seen": seen, "output": output})
    at = to_datetime(now)
    assert at is not None
    out.requirement = found
    out.verdicts = (*earlier_verdicts, Verdict(by, approve, at, decision, seen))
    out.approvals, out.needed = approved + int(approve), req.approvals
    out.final = not approve or out.approvals >= req.approvals
    entry = serde.encode(
        {
            "verdict": "approve" if approve else "reject",
            "decision": decision,
            "rule": req.rule,
            "seen": seen,
            "approvals": out.approvals,
            "needed": out.needed,
            "final": out.final,
        }
    )
    if out.final:
        tokens.complete(
            tx, token_id, output, owner, tasks, now, origin, by, known, None, audited, out, entry
        )
    else:
        out.row, out.output = tx.one(sql.token_row, {"rid": token_id}), None
        audit.append(tx, "Decision", run_id, token_id, entry, by, now)
        announce(tx, out, "TokenReviewed", run_id or "", now, origin, token_id)
    return out


def waiting_for(tx: Tx, me: str, roles: frozenset[str], now: float, limit: int) -> list[str]:
    """The waiting tokens *me* (acting with *roles*) may still approve: refusal() finds
    nothing against an approval of the diff they show, and *me* has not decided them."""
    out = []
    for token_id, found, row in requirements.waiting(tx, me, now, limit):
        if groups.is_group(token_id):  # nobody decides a group: its members finish it
            continue
        req = found or ANYONE
        created = float(row["created_at"])
        overdue = req.remind_after is not None and now >= created + req.remind_after
        earlier = None if row["mine"] is None else (bool(row["mine"]), float(row["mine_at"]))
        if refusal(req, me, roles, True, {}, req.seen, overdue, earlier, 0) is None:
            out.append(token_id)
    return out
