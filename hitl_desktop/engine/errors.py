"""Errors raised by the engine. Each message names the thing that went wrong."""

from __future__ import annotations

from datetime import UTC, datetime


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class TaskNotFound(EngineError):
    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"no task named {name!r} is registered (registered: {listed})")
        self.name = name


class RunNotFound(EngineError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class TokenNotFound(EngineError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"no token with id {token_id!r}")
        self.token_id = token_id


class TokenAlreadyFinished(EngineError):
    """A token can be completed once; a second completion changes nothing."""

    def __init__(
        self, token_id: str, status: str, by: str | None = None, at: float | None = None
    ) -> None:
        decided = ""
        if by is not None or at is not None:
            when = "" if at is None else f" at {_minute(at)}"
            decided = f" (decided by {by or 'an unknown reviewer'}{when})"
        super().__init__(f"token {token_id} is already {status}{decided}; nothing was changed")
        self.token_id = token_id
        self.status = status
        self.by = by
        """Who completed it, as the store recorded it (the database role on PostgreSQL)."""
        self.at = at
        """When it was completed or timed out (epoch seconds)."""


def _minute(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


class TokenExpired(TokenAlreadyFinished):
    """A completion arrived after the token's deadline. The completion's own transaction
    timed the token out (its run resumes to handle the expiry), so the token is TIMED_OUT."""

    def __init__(self, token_id: str, expires_at: float) -> None:
        when = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
        EngineError.__init__(
            self, f"token {token_id} expired at {when}; nothing was decided (it is now TIMED_OUT)"
        )
        self.token_id = token_id
        self.status = "TIMED_OUT"
        self.by = None
        self.at = self.expires_at = expires_at


class DecisionRefused(EngineError):
    """The review's requirement forbids this decision (not an approver, the requester
    approving, a second decision by the same reviewer, a different diff…): nothing was
    recorded, the token still waits."""

    def __init__(self, token_id: str, reason: str) -> None:
        super().__init__(f"decision on token {token_id} refused: {reason}")
        self.token_id = token_id
        self.reason = reason


class OutputRefused(EngineError):
    """The check the run's task declares for its tokens' outputs (`@task(check_output=...)`)
    refused an output. The token was not completed: it still waits, and so does its run."""

    def __init__(self, token_id: str, reason: str) -> None:
        super().__init__(
            f"the output for token {token_id} was refused: {reason}; "
            "nothing was changed and the token still waits"
        )
        self.token_id = token_id
        self.reason = reason


class TokenTimeoutError(EngineError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"token {token_id} timed out before it was completed")
        self.token_id = token_id


class PayloadTooLarge(EngineError):
    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} is {size:,} bytes of JSON, over the limit of {limit:,} bytes; "
            "nothing was written"
        )
        self.what = what
        self.size = size
        self.limit = limit


class NotJSON(EngineError):
    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} is not JSON-serialisable: {reason}")
        self.what = what


class ReplayMismatch(EngineError):
    """The task's code no longer makes the calls its recorded history says it made."""

    def __init__(self, position: int, expected: str, got: str) -> None:
        super().__init__(
            f"replay diverged at position {position}: the run's history has {expected} there, "
            f"but the code now calls {got}; the task's code changed under a waiting run, "
            "so nothing past this point was run"
        )
        self.position = position
        self.expected = expected
        self.got = got


class StepFailed(EngineError):
    """A step raised on its last attempt. Replays raise the same error without running it."""

    def __init__(self, step: str, error_type: str, message: str, attempts: int) -> None:
        super().__init__(
            f"step {step!r} failed after {attempts} attempt(s): {error_type}: {message}"
        )
        self.step = step
        self.error_type = error_type
        self.message = message
        self.attempts = attempts


class NotInRun(EngineError):
    def __init__(self, call: str) -> None:
        super().__init__(f"{call} can only be called inside a task that a running engine executes")


class InvalidDuration(EngineError, ValueError):
    def __init__(self, text: object) -> None:
        super().__init__(
            f"invalid duration {text!r}: "
            "use seconds or a string like '500ms', '30s', '10m', '2h', '1d'"
        )


class EngineNotStarted(EngineError):
    def __init__(self) -> None:
        super().__init__("the engine is not started: await engine.start() first")


class StoreNotUsable(EngineError):
    """The URL names a database that is not a run store this version can use: another
    application's database (never migrated into a store), or a store from a newer version."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url} is not usable as a run store: {reason}")
        self.url = url
        self.reason = reason
