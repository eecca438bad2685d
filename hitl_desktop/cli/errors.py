"""The exit statuses of `hitl`, the error that ends a command, and what a command prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAILURE = 1
USAGE = 2
CONFLICT = 3
INVALID_EDIT = 4
EXPIRED = 5
RUN_FAILED = 6
REFUSED = 7
"""The review's rule does not let this reviewer make this decision (nothing was recorded)."""

OUTCOME_CODES = {"applied": 0, "rejected": 0, "conflict": CONFLICT}
OUTCOME_CODES.update(invalid_edit=INVALID_EDIT, expired=EXPIRED)
"""The exit status for each outcome of a db-change run."""


class CliError(Exception):
    """Ends the command with one line on stderr and exit status *code*."""

    def __init__(self, message: str, code: int = FAILURE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Output:
    """What a command prints: *doc* with --json, *text* otherwise; then it exits with *code*."""

    doc: dict[str, Any]
    text: str
    code: int = 0
