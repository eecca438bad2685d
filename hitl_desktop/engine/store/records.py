"""Plain records passed between the engine and its transactions (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    status: str
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
    """What a transaction changed: events to publish and runs this engine now executes."""

    events: list[EventRow] = field(default_factory=list)
    resumed: list[Resume] = field(default_factory=list)
    value: Any = None
    expired_at: float | None = None
    """A completion found its token past this deadline and timed it out instead."""
