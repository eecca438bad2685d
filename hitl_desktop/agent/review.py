"""What a `db-change` run shows a reviewer, what the reviewer sends back, and how it ended.

Three JSON shapes the engine stores and the console and the CLI read:

* `Review`: the result of the run's ``propose`` step — the request, the agent's proposal and the
  diff of every row (before → after), read once so the console never queries the target again.
* `Decision`: the output a reviewer completes the run's token with (approve, maybe with edits, or
  reject).
* `Outcome`: the run's output — applied, rejected, expired, conflict or invalid edit — with who
  decided and why.

A change set's `Review` holds its `Part`s, each a review of its own (its proposal, diffs, rule and
read set), and its `Outcome` the outcome of each part (`PartOutcome`); see `change_set`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .diff import Diff, canonical_json
from .errors import AgentError
from .reads import Read, reads_from_json, reads_to_json

PROPOSE_STEP = "propose"
"""The name of the step whose result is the run's `Review`."""

TASK_NAME = "db-change"

OutcomeKind = Literal["applied", "rejected", "expired", "conflict", "invalid_edit"]
OUTCOMES: tuple[OutcomeKind, ...] = ("applied", "rejected", "expired", "conflict", "invalid_edit")

ApplyMode = Literal["all", "each"]
APPLY_MODES: tuple[ApplyMode, ...] = ("all", "each")
"""How a change set is applied: "all" together in one transaction once every part is approved
(any rejection rejects the set), or "each" part on its own as soon as it is approved."""


class DecisionInvalid(AgentError):
    """A token completion that is not a well-formed decision."""


@dataclass(frozen=True, slots=True)
class Review:
    request: str
    summary: str
    rationale: str
    proposal: dict[str, Any]
    """The proposal as `Proposal.to_wire()` gives it (the raw JSON the console can toggle to)."""
    diffs: tuple[Diff, ...]
    tables: tuple[str, ...]
    target: str
    """The target database, for display: its URL without a password."""
    proposer: str
    """Who wrote the proposal: ``offline (demo)`` or ``openai:<model>``."""
    reads: tuple[Read, ...] = ()
    """What the proposal relied on: every read of the proposer and the parent rows of its
    inserts, with the rows they returned. The apply step re-reads them; a difference is a
    conflict. Reviews stored before read sets were recorded have none."""
    rule: dict[str, Any] | None = None
    """The approval policy's rule that matched the proposal (`Rule.to_json()`), with the
    policy's version as "policy_version"; None: no policy, or no rule matched (and for a
    change set, whose parts have a rule each)."""
    parts: tuple[Part, ...] = ()
    """A change set's parts, in order, each reviewed on its own; empty: one proposal, one
    review. The set's own proposal and diffs are its parts' one after the other."""
    apply: ApplyMode = "all"
    """A change set's: how its approved parts are applied (see `APPLY_MODES`)."""

    @property
    def diff_hash(self) -> str:
        """SHA-256 of the diffs a reviewer is shown: a decision names it as what it saw."""
        diffs = [diff.to_json() for diff in self.diffs]
        return hashlib.sha256(canonical_json(diffs).encode()).hexdigest()

    @property
    def rows(self) -> int:
        return len(self.diffs)

    @property
    def ops(self) -> dict[str, int]:
        """How many inserts, updates and deletes (only the ops present)."""
        counts: dict[str, int] = {}
        for diff in self.diffs:
            counts[diff.op] = counts.get(diff.op, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "summary": self.summary,
            "rationale": self.rationale,
            "proposal": self.proposal,
            "diffs": [diff.to_json() for diff in self.diffs],
            "tables": list(self.tables),
            "target": self.target,
            "proposer": self.proposer,
            "reads": reads_to_json(self.reads),
            "rule": self.rule,
            # Only a change set has these: a one-part review is stored as it always was.
            **(
                {"parts": [part.to_json() for part in self.parts], "apply": self.apply}
                if self.parts
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Review:
        apply = data.get("apply", "all")
        if apply not in APPLY_MODES:
            raise ValueError(f"unknown apply mode {apply!r}")
        return cls(
            request=str(data["request"]),
            summary=str(data["summary"]),
            rationale=str(data["rationale"]),
            proposal=dict(data["proposal"]),
            diffs=tuple(Diff.from_json(item) for item in data["diffs"]),
            tables=tuple(data["tables"]),
            target=str(data["target"]),
            proposer=str(data["proposer"]),
            reads=reads_from_json(data.get("reads") or ()),
            rule=data.get("rule"),
            parts=tuple(Part.from_json(item) for item in data.get("parts") or ()),
            apply=apply,
        )


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a change set: a name for people and the part's own review, decided on a
    token of its own."""

    name: str
    review: Review

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "review": self.review.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Part:
        return cls(str(data["name"]), Review.from_json(data["review"]))


def review_from_steps(steps: Iterable[Any]) -> Review | None:
    """The `Review` among a run's recorded steps (`Engine.get_steps`), or None before it exists."""
    for step in steps:
        if step.kind == "step" and step.name == PROPOSE_STEP and step.ok:
            return Review.from_json(step.result)
    return None


@dataclass(frozen=True, slots=True)
class Edit:
    """Reviewer's replacement values for one change of the proposal (by its index)."""

    index: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    approve: bool
    reviewer: str
    comment: str | None = None
    edits: tuple[Edit, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "approve" if self.approve else "reject",
            "reviewer": self.reviewer,
            "comment": self.comment,
            "edits": [{"index": e.index, "values": dict(e.values)} for e in self.edits],
        }

    @classmethod
    def from_json(cls, data: Any) -> Decision:
        """Parse a token's output; raises `DecisionInvalid` naming what is wrong."""
        if not isinstance(data, Mapping):
            raise DecisionInvalid(f"a decision is a JSON object, not {type(data).__name__}")
        kind = data.get("decision")
        if kind not in ("approve", "reject"):
            raise DecisionInvalid(f"'decision' must be 'approve' or 'reject', not {kind!r}")
        reviewer = data.get("reviewer")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise DecisionInvalid("'reviewer' must be a non-empty name")
        _check_text(reviewer, "'reviewer'")
        comment = data.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise DecisionInvalid("'comment' must be text or null")
        _check_text(comment, "the comment")
        edits = parse_edits(data.get("edits") or [])
        if edits and kind == "reject":
            raise DecisionInvalid("a rejection carries no edits")
        return cls(kind == "approve", reviewer.strip(), comment, edits)


def parse_edits(data: Any) -> tuple[Edit, ...]:
    """Edits as JSON: ``[{"index": 0, "values": {"amount": "15.00"}}, ...]``, or the shorthand
    ``{"0": {...}}`` keyed by change index."""
    if isinstance(data, Mapping):
        data = [{"index": k, "values": v} for k, v in data.items()]
    if not isinstance(data, Sequence) or isinstance(data, str | bytes):
        raise DecisionInvalid("'edits' must be a list of {index, values}")
    edits: list[Edit] = []
    seen: set[int] = set()
    for item in data:
        if not isinstance(item, Mapping) or set(item) != {"index", "values"}:
            raise DecisionInvalid("each edit is an object with exactly 'index' and 'values'")
        try:
            index = int(item["index"])
        except (TypeError, ValueError):
            raise DecisionInvalid(f"edit index {item['index']!r} is not a number") from None
        if index in seen:
            raise DecisionInvalid(f"change {index} is edited twice")
        values = item["values"]
        if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
            raise DecisionInvalid(f"the values of edit {index} must be an object of columns")
        for column, value in values.items():
            _check_text(column, f"a column name of edit {index}")
            _check_text(value, f"the value of {column!r} in edit {index}")
        seen.add(index)
        edits.append(Edit(index, dict(values)))
    return tuple(edits)


def _check_text(value: Any, field: str) -> None:
    """Refuse text that cannot be encoded as UTF-8 (a lone surrogate): no database and no JSON
    file could store it, so it is named here rather than failing later and elsewhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DecisionInvalid(
                f"{field} contains a character that is not valid text (a lone surrogate, "
                f"{value[exc.start]!r} at position {exc.start}); remove it and try again"
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(key, field)
            _check_text(item, field)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_text(item, field)


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome: OutcomeKind
    reviewer: str | None
    comment: str | None
    message: str
    """One line for people: what happened."""
    rows: int = 0
    """Rows written (applied only)."""
    conflicts: tuple[dict[str, Any], ...] = ()
    problems: tuple[dict[str, Any], ...] = ()
    """Why an edit was refused (invalid_edit): `Problem.to_json()` items."""
    written: tuple[dict[str, Any], ...] | None = None
    """Applied: each written row before and after (`images.RowImage.to_json()`), what a revert
    undoes; None when not recorded (applied by an earlier version)."""
    parts: tuple[PartOutcome, ...] = ()
    """A change set's: how each part ended, in the order of the review's parts."""

    def to_json(self) -> dict[str, Any]:
        data = {
            "outcome": self.outcome,
            "reviewer": self.reviewer,
            "comment": self.comment,
            "message": self.message,
            "rows": self.rows,
            "conflicts": list(self.conflicts),
            "problems": list(self.problems),
        }
        if self.written is not None:
            data["written"] = list(self.written)
        if self.parts:
            data["parts"] = [part.to_json() for part in self.parts]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        kind = data["outcome"]
        if kind not in OUTCOMES:
            raise ValueError(f"unknown outcome {kind!r}")
        return cls(
            outcome=kind,
            reviewer=data.get("reviewer"),
            comment=data.get("comment"),
            message=str(data.get("message", "")),
            rows=int(data.get("rows", 0)),
            conflicts=tuple(data.get("conflicts", ())),
            problems=tuple(data.get("problems", ())),
            written=None if data.get("written") is None else tuple(data["written"]),
            parts=tuple(PartOutcome.from_json(item) for item in data.get("parts") or ()),
        )


@dataclass(frozen=True, slots=True)
class PartOutcome:
    """How one part of a change set ended: its outcome, with who decided it (its reviewer) and
    what that meant for the part (its message)."""

    name: str
    outcome: Outcome
    token_id: str | None = None
    """The token the part was decided on; None when its rule approved it."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "token_id": self.token_id, "outcome": self.outcome.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PartOutcome:
        return cls(str(data["name"]), Outcome.from_json(data["outcome"]), data.get("token_id"))
