"""The engine's public records: runs, tokens, steps and token results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import TokenTimeoutError


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


class TokenStatus(StrEnum):
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"


def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    task: str
    status: RunStatus
    payload: Any
    output: Any
    error: str | None
    traceback: str | None
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    waiting_token_id: str | None
    idempotency_key: str | None
    is_cached: bool = False
    """True when trigger() returned an existing run for its idempotency key."""


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    run_id: str | None
    status: TokenStatus
    tags: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    output: Any
    idempotency_key: str | None
    is_cached: bool = False
    """True when create_token() returned an existing token for its idempotency key."""


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded operation of a run: a step, a token creation, or a wait."""

    run_id: str
    position: int
    kind: str
    name: str
    ok: bool
    result: Any
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class TokenResult:
    """What `wait.for_token` returns: the completion's output, or ok=False on timeout."""

    token_id: str
    ok: bool
    output: Any = None
    error: str | None = field(default=None)

    def unwrap(self) -> Any:
        if not self.ok:
            raise TokenTimeoutError(self.token_id)
        return self.output
