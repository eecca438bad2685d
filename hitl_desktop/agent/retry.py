"""Retrying the apply transaction when the target is busy, for a bounded time.

The apply step's transaction either commits everything with its marker or nothing, so running it
again after a lock timeout, a deadlock or a serialization failure is safe. `retrying` runs an
attempt again with exponential backoff and jitter until it succeeds, fails for another reason, or
the time is up; then `TargetBusy` names the cause and says that nothing was written.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import AgentError

T = TypeVar("T")

DEFAULT_RETRY_FOR = 30.0
"""Seconds an apply keeps trying while the target is locked."""
LOCK_WAIT = 0.25
"""Seconds one attempt waits for a lock before it gives up and backs off."""
FIRST_PAUSE = 0.05
MAX_PAUSE = 2.0

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_PG_TRANSIENT = {
    "40001": "serialization_failure",
    "40P01": "deadlock_detected",
    "55P03": "lock_not_available",
}


class TargetBusy(AgentError):
    """The target stayed locked (or kept failing to serialize) for the whole retry time."""


class Transient(Exception):
    """An error the caller knows a new attempt can get past (raised with its cause)."""


def transient_cause(exc: BaseException) -> str | None:
    """What makes *exc* worth another attempt, for people; None when it is not."""
    if isinstance(exc, Transient):
        return str(exc)
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return f"SQLite: {orig}"
        text = str(orig)
        return f"SQLite: {text}" if "locked" in text or "busy" in text else None
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _PG_TRANSIENT:
        return f"PostgreSQL {_PG_TRANSIENT[state]} ({state})"
    return None


def retrying(
    attempt: Callable[[float], T],
    *,
    retry_for: float = DEFAULT_RETRY_FOR,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
) -> T:
    """``attempt(lock_wait)`` until it returns, retrying transient errors for *retry_for* s.

    *lock_wait* is how long the attempt may wait for a lock (never past the deadline). The time
    spent counts both the clock and the pauses taken, so the loop ends even with a clock that
    does not move.
    """
    if retry_for < 0:
        raise ValueError(f"retry_for must be 0 or more seconds, not {retry_for!r}")
    start = monotonic()
    paused = 0.0
    pause = FIRST_PAUSE
    attempts = 0
    while True:
        attempts += 1
        spent = max(monotonic() - start, paused)
        wait = max(0.001, min(LOCK_WAIT, retry_for - spent))
        try:
            return attempt(wait)
        except Exception as exc:
            cause = transient_cause(exc)
            if cause is None:
                raise
            # Jitter keeps two waiting writers from retrying in step.
            next_pause = pause * (0.5 + 0.5 * jitter())
            spent = max(monotonic() - start, paused)
            if spent + next_pause > retry_for:
                raise TargetBusy(
                    f"the target database stayed busy for {spent:.1f} s over {attempts} "
                    f"attempt(s) ({cause}); nothing was written"
                ) from exc
            sleep(next_pause)
            paused += next_pause
            pause = min(pause * 2, MAX_PAUSE)
