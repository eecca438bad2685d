"""What the console shows about a run, as immutable records built from the engine's records.

Qt-free: the table model, the review pane and the tests all read these. Nothing here queries a
store; `Console` fetches runs, steps and tokens through the engine API and builds these from them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from ..agent import (
    OUTCOMES,
    ChangeSet,
    Outcome,
    PartState,
    RevertState,
    Review,
    review_from_steps,
)
from ..application import Decided
from ..engine import Run, RunStatus, Step, Token, TokenStatus

REQUEST_CHARS = 240
"""The most characters of a request kept for the table (the review pane shows it whole)."""


def read_outcome(output: Any) -> Outcome | None:
    """A `db-change` run's `Outcome`, or None for any other output."""
    if isinstance(output, Mapping) and output.get("outcome") in OUTCOMES:
        try:
            return Outcome.from_json(output)
        except (KeyError, TypeError, ValueError):
            return None
    return None


def request_of(payload: Any) -> str:
    """The request a run was asked to do: a `ChangeRequest`'s text, else its payload as JSON."""
    if isinstance(payload, Mapping) and isinstance(payload.get("request"), str):
        text = str(payload["request"])
    elif payload is None:
        text = ""
    else:
        try:
            text = json.dumps(payload, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(payload)
    text = " ".join(text.split())
    return text if len(text) <= REQUEST_CHARS else text[: REQUEST_CHARS - 1] + "…"


def state_of(status: RunStatus, outcome: Outcome | None) -> str:
    """One word for where a run is: waiting, applied, rejected, expired, conflict, invalid edit,
    failed, canceled, working (queued or executing) or done (a finished run of another task)."""
    if status is RunStatus.WAITING:
        return "waiting"
    if status in (RunStatus.QUEUED, RunStatus.EXECUTING):
        return "working"
    if status is RunStatus.FAILED:
        return "failed"
    if status is RunStatus.CANCELED:
        return "canceled"
    if outcome is None:
        return "done"
    return outcome.outcome.replace("_", " ")


@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of the runs table: what the run record itself says (no extra reads)."""

    id: str
    task: str
    status: RunStatus
    request: str
    created_at: float
    updated_at: float
    tags: tuple[str, ...]
    token_id: str | None
    outcome: Outcome | None
    error: str | None

    @classmethod
    def from_run(cls, run: Run) -> RunRow:
        return cls(
            id=run.id,
            task=run.task,
            status=run.status,
            request=request_of(run.payload),
            created_at=run.created_at.timestamp(),
            updated_at=run.updated_at.timestamp(),
            tags=run.tags,
            token_id=run.waiting_token_id,
            outcome=read_outcome(run.output),
            error=run.error,
        )

    @property
    def state(self) -> str:
        return state_of(self.status, self.outcome)

    @property
    def waiting(self) -> bool:
        return self.status is RunStatus.WAITING and self.token_id is not None


@dataclass(frozen=True, slots=True)
class RunDetails:
    """What a row shows once its review and token are read (lazily, for visible rows only)."""

    summary: str | None
    tables: tuple[str, ...]
    rows: int | None
    ops: tuple[tuple[str, int], ...]
    expires_at: float | None
    token_tags: tuple[str, ...]
    change_set: str | None = None
    """A change set's progress, as the table marks it ("set: 1 of 2 approved")."""

    @classmethod
    def build(
        cls, review: Review | None, token: Token | None, found: ChangeSet | None = None
    ) -> RunDetails:
        waiting = token is not None and token.status is TokenStatus.WAITING
        tables = review.tables if review is not None else ()
        if not tables and token is not None:
            tables = token.tags
        return cls(
            summary=None if review is None else review.summary,
            tables=tuple(tables),
            rows=None if review is None else review.rows,
            ops=() if review is None else tuple(sorted(review.ops.items())),
            expires_at=token.expires_at.timestamp() if waiting and token is not None else None,
            token_tags=() if token is None else token.tags,
            change_set=None if found is None else set_progress(found),
        )


def set_progress(found: ChangeSet) -> str:
    """A change set in a few words: "set: 1 of 2 approved", "set of 3: 1 rejected, 2 waiting"
    (once a part was rejected or expired nothing of an all-or-nothing set is written)."""
    count = len(found.parts)
    statuses = [part.status for part in found.parts]
    if all(status in ("waiting", "approved") for status in statuses):
        return f"set: {statuses.count('approved')} of {count} approved"
    tally: dict[str, int] = {}
    for word in (status.replace("_", " ") for status in statuses):
        tally[word] = tally.get(word, 0) + 1
    if len(tally) == 1:
        return f"set: {count} of {count} {next(iter(tally))}"
    return f"set of {count}: " + ", ".join(f"{n} {word}" for word, n in tally.items())


def part_status(part: PartState) -> str:
    """A part's status as a reviewer reads it: "waiting", "approved by ana", "rejected by bob",
    "expired", "applied", "conflict"."""
    status = part.status.replace("_", " ")
    if part.decided_by and part.status in ("approved", "rejected"):
        return f"{status} by {', '.join(part.decided_by)}"
    if part.decided_by and part.status == "waiting":  # a rule that wants several approvals
        return f"waiting (approved by {', '.join(part.decided_by)})"
    return status


def revert_hint(state: RevertState | None) -> str:
    """What Revert… does for a run, or why it cannot (its tooltip)."""
    if state is None:
        return "Only an applied db-change run can be reverted"
    if state.revertible:
        return (
            f"Start a run that undoes what run {state.run_id} wrote; it is reviewed and "
            "approved like any change"
        )
    return f"Cannot revert: {state.reason}"


EMPTY_DETAILS = RunDetails(None, (), None, (), None, ())


@dataclass(frozen=True, slots=True)
class RunView:
    """Everything the review pane shows for one run."""

    run: Run
    row: RunRow
    review: Review | None
    steps: tuple[Step, ...]
    token: Token | None
    """The token the run waits on (or last waited on), when there is one."""
    decided: Decided | None = None
    """Who completed that token and how, once someone did."""
    change_set: ChangeSet | None = None
    """A change set's parts (`agent.read_change_set`); None for a run of one review."""
    part_tokens: tuple[Token, ...] = ()
    """The tokens of the change set's parts, as read with it."""
    part: PartState | None = None
    """On the view of one part (`for_part`): that part; its review and token are the view's."""
    revert: RevertState | None = None
    """Whether the run can be reverted, and the runs it reverts or is reverted by (a
    db-change run's; None for other tasks)."""

    @classmethod
    def build(
        cls,
        run: Run,
        steps: Sequence[Step],
        token: Token | None,
        *,
        change_set: ChangeSet | None = None,
        part_tokens: Sequence[Token] = (),
        revert: RevertState | None = None,
    ) -> RunView:
        try:
            review = review_from_steps(steps)
        except (KeyError, TypeError, ValueError):
            review = None
        decided = Decided.of(token, review)
        return cls(
            run,
            RunRow.from_run(run),
            review,
            tuple(steps),
            token,
            decided,
            change_set,
            tuple(part_tokens),
            revert=revert,
        )

    def for_part(self, number: int) -> RunView:
        """The view of part *number* of this run's change set: the part's review, token and
        decision, what the review pane shows and a decision on it decides."""
        assert self.change_set is not None, "only a change set has parts"
        part = self.change_set.parts[number - 1]
        token = next((t for t in self.part_tokens if t.id == part.token_id), None)
        decided = Decided.of(token, part.review)
        return replace(self, review=part.review, token=token, decided=decided, part=part)

    @property
    def set_review(self) -> Review | None:
        """The run's own review: the whole change set's on a part's view."""
        return self.change_set.review if self.change_set is not None else self.review

    @property
    def decidable(self) -> bool:
        """True while a reviewer can still decide: the run waits on a waiting token (for a
        change set: the view of a part that waits, on that part's token)."""
        if self.change_set is not None:
            part, token = self.part, self.token
            return (
                part is not None
                and part.status == "waiting"
                and self.row.waiting
                and token is not None
                and token.status is TokenStatus.WAITING
                and token.id == part.token_id
            )
        return (
            self.row.waiting
            and self.review is not None
            and self.token is not None
            and self.token.status is TokenStatus.WAITING
            and self.token.id == self.row.token_id
        )

    @property
    def expires_at(self) -> float | None:
        if self.token is None or self.token.status is not TokenStatus.WAITING:
            return None
        return self.token.expires_at.timestamp()


class View(Enum):
    """The table's views: which runs it lists."""

    WAITING = "Waiting"
    ALL = "All"
    APPLIED = "Applied"
    REJECTED = "Rejected"
    EXPIRED = "Expired"
    FAILED = "Failed"
    MINE = "Waiting for me"
    """Waiting runs this reviewer may still decide (the console asks the store which)."""

    @property
    def status(self) -> RunStatus | None:
        """The status to ask the engine for (None: every status, filtered here)."""
        return _VIEW_STATUS[self]

    def accepts(self, row: RunRow) -> bool:
        states = _VIEW_STATES[self]
        return states is None or row.state in states


_VIEW_STATUS: dict[View, RunStatus | None] = {
    View.WAITING: RunStatus.WAITING,
    View.ALL: None,
    View.APPLIED: RunStatus.COMPLETED,
    View.REJECTED: RunStatus.COMPLETED,
    View.EXPIRED: RunStatus.COMPLETED,
    # Failed runs and changes that could not be made (a conflict, a refused edit) together:
    # everything that needs someone to look at why.
    View.FAILED: None,
    View.MINE: RunStatus.WAITING,
}

_VIEW_STATES: dict[View, frozenset[str] | None] = {
    View.WAITING: frozenset({"waiting"}),
    View.ALL: None,
    View.APPLIED: frozenset({"applied"}),
    View.REJECTED: frozenset({"rejected"}),
    View.EXPIRED: frozenset({"expired"}),
    View.FAILED: frozenset({"failed", "canceled", "conflict", "invalid edit"}),
    View.MINE: frozenset({"waiting"}),
}


# ---------------------------------------------------------------- formatting


def format_duration(seconds: float) -> str:
    """A short duration: 45s, 12m 05s, 5h 12m, 2d 3h."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def format_countdown(expires_at: float | None, now: float) -> str:
    """The live "expires in" text: a duration, or "expired" once the deadline passed."""
    if expires_at is None:
        return ""
    left = expires_at - now
    return "expired" if left <= 0 else format_duration(left)


def format_time(epoch: float, now: float) -> str:
    """A local clock time, with the date when it is not today."""
    moment = datetime.fromtimestamp(epoch)
    today = datetime.fromtimestamp(now).date()
    if moment.date() == today:
        return moment.strftime("%H:%M:%S")
    if moment.year == today.year:
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%Y-%m-%d")


def format_when(epoch: float, now: float) -> str:
    """A local time to the minute, for saying when something was decided: "10:42" today,
    "Dec 04 10:42" this year, "2025-12-04 10:42" before."""
    moment = datetime.fromtimestamp(epoch)
    today = datetime.fromtimestamp(now).date()
    if moment.date() == today:
        return moment.strftime("%H:%M")
    if moment.year == today.year:
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def already_finished(status: str, by: str | None, at: float | None, now: float) -> str:
    """What a reviewer is told when their decision came second: who was first and when."""
    if status == TokenStatus.TIMED_OUT:
        return "Nothing changed: nobody decided in time and this request expired."
    who = f" by {by}" if by is not None else " elsewhere"
    when = "" if at is None else f" at {format_when(at, now)}"
    return f"Already decided{who}{when} — nothing was changed"


def format_rows(rows: int | None, ops: Sequence[tuple[str, int]]) -> str:
    """Rows changed: "1 update", "3 inserts", or "4 rows" when the ops are mixed."""
    if rows is None:
        return ""
    if len(ops) == 1:
        op, n = ops[0]
        return f"{n} {op}" + ("s" if n != 1 else "")
    return f"{rows} row" + ("s" if rows != 1 else "")
