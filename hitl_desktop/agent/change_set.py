"""Change sets: one request, several independent parts, each reviewed on its own.

A proposer answering a request that asks for several independent things names the part of each
row change (`RowChange.part`). The run's `Review` then holds one `Part` per name, in order: each
with its own proposal, diffs and diff hash, read set, tables (its token's tags) and policy rule,
decided on a token of its own. The set's own proposal and diffs are its parts' one after the
other (`set_review`), so part *n*'s change *i* is the set's change ``offsets[n] + i``.

How the approved parts are written is the request's choice (`ChangeRequest.apply`):

* ``all`` (the default): the run waits once, with `wait.for_all`, for every part's decision; any
  rejection or expiry rejects the set and nothing is written; when all are approved every part
  is written in ONE target transaction (the step ``apply``, with the usual marker, fingerprint
  and read-set checks).
* ``each``: each approved part is written in a transaction of its own (the step ``apply part N``)
  as soon as it is approved; a rejected or expired part is simply not written.

`change_set` is what a console shows: the parts with their token ids, reviews and status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..engine import Engine, Token, TokenStatus
from .diff import Diff
from .policy import Rule
from .proposal import Proposal
from .reads import unique_reads
from .review import (
    PROPOSE_STEP,
    ApplyMode,
    Decision,
    Edit,
    Outcome,
    Part,
    PartOutcome,
    Review,
    review_from_steps,
)


def split(proposal: Proposal) -> tuple[tuple[str, Proposal], ...]:
    """The parts of *proposal*, in order of first appearance, each a proposal of its own (the
    part's name as its summary, the whole rationale); empty when it names fewer than two."""
    names = proposal.parts
    if len(names) < 2:
        return ()
    return tuple(
        (
            name,
            Proposal(
                summary=name,
                rationale=proposal.rationale,
                changes=[
                    change.model_copy(update={"part": None})
                    for change in proposal.changes
                    if change.part == name
                ],
            ),
        )
        for name in names
    )


def set_review(
    request: str,
    proposal: Proposal,
    parts: Sequence[Part],
    *,
    target: str,
    proposer: str,
    apply: ApplyMode,
) -> Review:
    """The review of a change set of *parts* (reviews built from `split(proposal)`): its
    proposal and diffs are the parts' one after the other, its read set all of theirs."""
    changes = [
        change for name in proposal.parts for change in proposal.changes if change.part == name
    ]
    diffs: list[Diff] = []
    for offset, part in zip(offsets(parts), parts, strict=True):
        diffs += [replace(diff, index=offset + diff.index) for diff in part.review.diffs]
    ordered = proposal.model_copy(update={"changes": changes})
    return Review(
        request=request,
        summary=proposal.summary,
        rationale=proposal.rationale,
        proposal=ordered.to_wire(),
        diffs=tuple(diffs),
        tables=ordered.tables,
        target=target,
        proposer=proposer,
        reads=unique_reads(read for part in parts for read in part.review.reads),
        parts=tuple(parts),
        apply=apply,
    )


def offsets(parts: Sequence[Part]) -> tuple[int, ...]:
    """Where each part's changes start among the set's."""
    found, at = [], 0
    for part in parts:
        found.append(at)
        at += len(part.review.diffs)
    return tuple(found)


def rule_of(review: Review) -> Rule | None:
    return None if review.rule is None else Rule.from_json(review.rule)


def auto_approved(part: Part) -> bool:
    """True when the part's rule approves it: no token is made for it."""
    rule = rule_of(part.review)
    return rule is not None and rule.auto_approve


def set_edits(review: Review, decisions: Sequence[Decision | None]) -> tuple[Edit, ...]:
    """Each part's decision's edits, numbered as the set's changes."""
    return tuple(
        Edit(offset + edit.index, edit.values)
        for offset, decision in zip(offsets(review.parts), decisions, strict=True)
        if decision is not None
        for edit in decision.edits
    )


def token_ids(review: Review, steps: Iterable[Any]) -> tuple[str | None, ...]:
    """The token of each part, from the run's recorded steps: the run creates one per part its
    rule does not approve, in the parts' order, right after the review (None: approved by its
    rule, or not created yet)."""
    made: list[str] = []
    seen_review = False
    for step in steps:
        if step.kind == "step" and step.name == PROPOSE_STEP:
            seen_review = True
        elif seen_review and step.kind == "token" and step.name == "create_token" and step.ok:
            made.append(str(step.result["id"]))
    found: list[str | None] = []
    for part in review.parts:
        found.append(None if auto_approved(part) or not made else made.pop(0))
    return tuple(found)


def part_review(steps: Iterable[Any], token_id: str) -> Review | None:
    """The review decided on *token_id*: its part's, for a change set's token; else the run's."""
    steps = list(steps)
    review = review_from_steps(steps)
    if review is None or not review.parts:
        return review
    for part, found in zip(review.parts, token_ids(review, steps), strict=True):
        if found == token_id:
            return part.review
    return review


PartStatus = Literal[
    "waiting", "approved", "rejected", "expired", "applied", "conflict", "invalid_edit"
]


@dataclass(frozen=True, slots=True)
class PartState:
    """One part of a change set as a console shows it."""

    number: int
    """1-based, in the set's order."""
    name: str
    review: Review
    """The part's own review: its diffs, diff hash, rule and tables."""
    token_id: str | None
    """The token to decide it on (`decide`); None when its rule approves it."""
    status: PartStatus
    """From its token while the run waits (waiting, approved, rejected, expired), from the
    run's outcome once it ended (or once applied, in "each" mode)."""
    decided_by: tuple[str, ...] = ()
    """Who approved it so far, or who rejected it."""
    outcome: Outcome | None = None
    """How it ended, once it did."""


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """A `db-change` run's change set: its review (the whole) and its parts."""

    review: Review
    parts: tuple[PartState, ...]
    tokens: tuple[Token, ...] = ()
    """The parts' tokens as they were read for it (those it was given), in the parts' order."""

    @property
    def apply(self) -> ApplyMode:
        return self.review.apply

    def part_of(self, token_id: str) -> PartState | None:
        return next((part for part in self.parts if part.token_id == token_id), None)

    def waiting(self) -> tuple[PartState, ...]:
        """The parts still waiting for a decision."""
        return tuple(part for part in self.parts if part.status == "waiting")


def change_set(
    steps: Iterable[Any], tokens: Iterable[Token] = (), outcome: Outcome | None = None
) -> ChangeSet | None:
    """The change set of a run, from its recorded steps (`Engine.get_steps`), the tokens of the
    run as read now (`Engine.list_tokens(run_id=…)`, for each part's decisions) and its outcome
    once it ended; None for a run whose review is not a change set (or not there yet)."""
    steps = list(steps)
    review = review_from_steps(steps)
    if review is None or not review.parts:
        return None
    by_id = {token.id: token for token in tokens}
    ended = {} if outcome is None else dict(enumerate(outcome.parts))
    applied = _applied_parts(steps)
    parts = []
    ids = token_ids(review, steps)
    for number, (part, token_id) in enumerate(zip(review.parts, ids, strict=True), 1):
        status, by = _token_status(part, None if token_id is None else by_id.get(token_id))
        done = ended.get(number - 1)
        result = done.outcome if done is not None else applied.get(number)
        if result is not None:
            status = result.outcome
            by = by or (() if result.reviewer is None else (result.reviewer,))
        parts.append(PartState(number, part.name, part.review, token_id, status, by, result))
    read = tuple(by_id[token_id] for token_id in ids if token_id in by_id)
    return ChangeSet(review, tuple(parts), read)


async def read_change_set(engine: Engine, run_id: str) -> ChangeSet | None:
    """`change_set` of *run_id* as the store holds it now."""
    run = await engine.get_run(run_id)
    outcome = None
    if isinstance(run.output, dict) and "outcome" in run.output:
        outcome = Outcome.from_json(run.output)
    steps = await engine.get_steps(run_id)
    review = review_from_steps(steps)
    if review is None or not review.parts:
        return None
    # get_token, not list_tokens: it reads the verdicts of a part that needs several approvals.
    tokens = [await engine.get_token(i) for i in token_ids(review, steps) if i is not None]
    return change_set(steps, tokens, outcome)


def _token_status(part: Part, token: Token | None) -> tuple[PartStatus, tuple[str, ...]]:
    if token is None:
        if auto_approved(part):
            rule = rule_of(part.review)
            assert rule is not None
            return "approved", (f"policy rule '{rule.name}'",)
        return "waiting", ()
    if token.status == TokenStatus.TIMED_OUT:
        return "expired", ()
    approvals = tuple(v.reviewer for v in token.verdicts if v.approve)
    if token.status == TokenStatus.WAITING:
        return "waiting", approvals
    decision = Decision.from_json(token.output)
    if decision.approve:
        return "approved", approvals or (decision.reviewer,)
    return "rejected", (decision.reviewer,)


APPLY_PART = "apply part {number}"
"""The step that writes part *number* of a change set applied "each"."""


def _applied_parts(steps: Iterable[Any]) -> dict[int, Outcome]:
    """The outcome of each part an "each" set has written so far (its step's result)."""
    found: dict[int, Outcome] = {}
    prefix = APPLY_PART.format(number="")
    for step in steps:
        if step.kind == "step" and step.ok and step.name.startswith(prefix):
            found[int(step.name.removeprefix(prefix))] = Outcome.from_json(step.result)
    return found


def part_outcomes(
    review: Review,
    outcomes: Sequence[Outcome],
    tokens: Sequence[str | None],
) -> tuple[PartOutcome, ...]:
    return tuple(
        PartOutcome(part.name, outcome, token_id)
        for part, outcome, token_id in zip(review.parts, outcomes, tokens, strict=True)
    )
