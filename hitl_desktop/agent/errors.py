"""Errors the agent raises on purpose, and the problems a rejected proposal is made of."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

ProblemCode = Literal[
    "unknown_table",
    "denied_table",
    "unknown_column",
    "denied_column",
    "read_only_column",
    "bad_key",
    "bad_shape",
    "bad_value",
    "not_null",
    "duplicate_row",
    "too_many_rows",
    "row_missing",
    "row_exists",
    "fk_missing",
    "fk_referenced",
]


class AgentError(Exception):
    """Base class of every error the agent raises on purpose."""


class CatalogueError(AgentError):
    """The target database or the allow/deny settings cannot give a usable catalogue."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a proposal. `index` is the change's position (None: whole proposal)."""

    index: int | None
    table: str | None
    column: str | None
    code: ProblemCode
    message: str

    def __str__(self) -> str:
        where = "proposal" if self.index is None else f"change {self.index}"
        if self.table is not None:
            target = self.table if self.column is None else f"{self.table}.{self.column}"
            where += f" ({target})"
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Problem:
        return cls(
            index=data["index"],
            table=data["table"],
            column=data["column"],
            code=data["code"],
            message=data["message"],
        )


class ProposalInvalid(AgentError):
    """A proposal failed validation; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the proposal has {count} problem(s); nothing was written:\n{lines}")

    def for_llm(self) -> str:
        """The problems as text to send back to the model so that it can correct its answer."""
        lines = "\n".join(f"- {p}" for p in self.problems)
        return f"The proposal was rejected. Fix every problem below and answer again:\n{lines}"
