"""Plain records passed between the engine and its store (no SQL here): what a run writes,
what replay reads, and what each store operation returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import Requirement, Run, RunStatus, Token, TokenStatus


@dataclass(slots=True)
class StepWrite:
    position: int
    kind: str  # "step" | "token" | "wait"
    name: str
    ok: bool
    result: str | None  # JSON text
    error: str | None
    attempts: int
    started_at: float
    finished_at: float


@dataclass(slots=True)
class TokenWrite:
    id: str
    run_id: str | None
    tags: list[str]
    created_at: float
    expires_at: float
    idempotency_key: str | None = None
    idempotency_expires_at: float | None = None
    requirement: Requirement | None = None
    group: tuple[str, tuple[str, ...]] | None = None
    """A wait for any / all: ("any" or "all", the member tokens' ids in order)."""


@dataclass(slots=True)
class Writes:
    """What a run produced since its last commit; written with the next one."""

    steps: list[StepWrite] = field(default_factory=list)
    tokens: list[TokenWrite] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.steps or self.tokens)

    def take(self) -> Writes:
        taken = Writes(self.steps, self.tokens)
        self.steps, self.tokens = [], []
        return taken


@dataclass(slots=True)
class TokenState:
    status: TokenStatus
    output: str | None  # JSON text


@dataclass(slots=True)
class Recorded:
    """A recorded operation, as replay sees it."""

    kind: str
    name: str
    ok: bool
    result: str | None
    error: str | None


@dataclass(slots=True)
class Resume:
    """Everything needed to replay a run, loaded in the transaction that claimed it."""

    run_id: str
    task: str
    payload: str | None
    steps: dict[int, Recorded]  # by position
    tokens: dict[str, TokenState]
    token_id: str | None = None  # the token whose completion resumed it, if any


@dataclass(slots=True)
class EventRow:
    id: int
    at: float
    origin: str
    kind: str
    run_id: str
    token_id: str | None
    data: str | None
    values: dict[str, Any] | None = None  # *data* decoded, for events this engine made


@dataclass(slots=True)
class Committed:
    """What a write changed: events to publish and runs this engine now executes."""

    events: list[EventRow] = field(default_factory=list)
    resumed: list[Resume] = field(default_factory=list)


@dataclass(slots=True)
class Triggered(Committed):
    existing: Run | None = None
    """The live run that already held the idempotency key; nothing was inserted."""


@dataclass(slots=True)
class Paused(Committed):
    finished: TokenState | None = None
    """The token had already finished: the run did not pause and goes on with this state."""


@dataclass(slots=True)
class Canceled(Committed):
    already: RunStatus | None = None
    """The run had already finished with this status: nothing changed."""


@dataclass(slots=True)
class Completion(Committed):
    row: Mapping[str, Any] | None = None
    """The completed token's row; None when it was found past its deadline (see expired_at)."""
    output: str | None = None
    expired_at: float | None = None
    """The token was past this deadline: this commit timed it out instead of completing it."""

    def token(self) -> Token:
        """The completed token, built in the caller's thread rather than the store's, whose
        time is the commit's."""
        from .rows import token_record

        assert self.row is not None
        return token_record(self.row, self.output)


@dataclass(slots=True)
class TimedOut(Committed):
    next_deadline: float | None = None
    """The earliest deadline of a token still waiting, to arm the timer for."""


@dataclass(slots=True)
class Claimed(Committed):
    looked_at: int = 0
    """QUEUED runs looked at: a full batch means there may be more."""


@dataclass(slots=True)
class Polled:
    """What other processes committed since the last look."""

    data_version: int | None
    events: list[EventRow]
    last_event_id: int | None
    """None: nothing changed (SQLite's data_version did not move), the cursor stays."""


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """An engine attached to the store, as registered."""

    id: str
    host: str
    pid: int
    proc_start: str | None
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None


@dataclass(slots=True)
class NewRun:
    """A run to insert."""

    id: str
    task: str
    status: RunStatus
    tags: list[str]
    idempotency_key: str | None
    idempotency_expires_at: float | None
    owner: str | None
    code_hash: str | None
    created_at: float
    created_by: str
    """Recorded on SQLite; PostgreSQL records the session's role instead."""
    audit: tuple[str, str] | None = None
    """(kind, run id): an audit entry about that run, written with this one (a revert's)."""
