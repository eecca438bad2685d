"""The seam between the `db-change` task and whoever writes its proposal (a model or the demo).

A proposer gets a `ProposalSession`: the catalogue, the read-only tools and a recorder (the run's
context). Everything that reaches outside the process — a model call, a database read, a
validation against current rows — goes through `session.record(name, fn, *args)`, an engine step,
so a resumed run replays the recorded results and never calls the model or the database again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from ._bind import Bind, connection
from ._rows import select_matching
from .catalogue import Catalogue
from .coerce import CoercionError, coerce_value, json_row
from .errors import AgentError, Problem, ProposalInvalid
from .proposal import Proposal
from .reads import Read, unique_reads
from .validation import DEFAULT_MAX_ROWS, validate

MAX_FIND_ROWS = 50
FIND_LIMIT = 10
"""How many rows `find_rows` returns when no limit is asked for."""
"""The most rows `find_rows` returns, whatever limit is asked for."""


class Recorder(Protocol):
    """What a proposer needs of the run's context: `RunContext.step`."""

    async def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any: ...


class ToolError(AgentError):
    """A read tool was called with arguments it cannot use; the message is for the model."""


class ProposerFailed(AgentError):
    """The proposer gave up (too many invalid answers, a model that would not answer)."""


class ReadTools:
    """`get_row` and `find_rows` on the target: visible columns only, values bound, JSON out.

    *target* is the proposing reader, or the apply step's locked connection when it re-runs the
    proposal's reads (`read_check`)."""

    def __init__(self, catalogue: Catalogue, target: Bind) -> None:
        self.catalogue = catalogue
        self.target = target

    def _table(self, table: Any) -> str:
        if not isinstance(table, str) or self.catalogue.get(table) is None:
            known = ", ".join(self.catalogue.tables)
            raise ToolError(f"unknown table {table!r}; the tables are: {known}")
        return table

    def _bind(self, table: str, column: Any, value: Any) -> Any:
        info = self.catalogue[table]
        found = info.column(column) if isinstance(column, str) else None
        if found is None:
            raise ToolError(
                f"unknown column {column!r} in {table}; its columns are: "
                f"{', '.join(info.column_names)}"
            )
        try:
            return coerce_value(value, found)
        except CoercionError as exc:
            raise ToolError(f"{table}.{column}: {exc}") from None

    def get_row(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row with this primary key (visible columns), or None."""
        name = self._table(table)
        info = self.catalogue[name]
        if not isinstance(key, Mapping) or set(key) != set(info.primary_key):
            raise ToolError(
                f"the key of {name} is {', '.join(info.primary_key)}; give exactly those columns"
            )
        values = tuple(self._bind(name, col, key[col]) for col in info.primary_key)
        with connection(self.target) as conn:
            rows = select_matching(
                conn,
                self.catalogue.core_table(name),
                info.primary_key,
                [values],
                info.column_names,
            )
        return json_row(rows[0]) if rows else None

    def find_rows(
        self, table: str, where: Mapping[str, Any], limit: int = FIND_LIMIT
    ) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values (AND), at most *limit* (≤ MAX_FIND_ROWS)."""
        name = self._table(table)
        if not isinstance(where, Mapping):
            raise ToolError("'where' must be an object of column: value")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ToolError(f"'limit' must be a positive whole number, not {limit!r}")
        core = self.catalogue.core_table(name)
        query = sa.select(*self.catalogue.visible_columns(name))
        for column, value in where.items():
            bound = self._bind(name, column, value)
            query = query.where(
                core.c[column].is_(None) if bound is None else core.c[column] == bound
            )
        info = self.catalogue[name]
        query = query.order_by(*(core.c[c] for c in info.primary_key)).limit(
            min(limit, MAX_FIND_ROWS)
        )
        with connection(self.target) as conn:
            return [json_row(dict(row._mapping)) for row in conn.execute(query)]


@dataclass
class ProposalSession:
    """Everything a proposer may use while it works on one request of one run."""

    request: str
    catalogue: Catalogue
    tools: ReadTools
    recorder: Recorder
    max_rows: int = DEFAULT_MAX_ROWS
    part: str | None = None
    """The part of a change set the proposer works on now: the reads it makes meanwhile are
    relied on by that part alone. None: by every part (a model's reads, made for the whole)."""
    _checks: int = 0
    _reads: list[Read] = field(default_factory=list)
    _read_parts: list[str | None] = field(default_factory=list)

    @property
    def reads(self) -> tuple[Read, ...]:
        """What the proposer read through the tools so far, each identical read once."""
        return unique_reads(self._reads)

    def reads_of(self, part: str) -> tuple[Read, ...]:
        """What the change set's *part* relies on: the reads made for it or for no part."""
        pairs = zip(self._reads, self._read_parts, strict=True)
        return unique_reads(read for read, made_for in pairs if made_for in (None, part))

    def note_read(self, read: Read) -> None:
        """Add a read the proposer relied on (derive it from a recorded step's result)."""
        self._reads.append(read)
        self._read_parts.append(self.part)

    async def record(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run *fn* as a recorded step of the run (its result must be JSON).

        A step that calls `tools.get_row` or `tools.find_rows` is a read: it joins the read set
        from its arguments and its recorded result, so a replay gets the same read set."""
        result = await self.recorder.step(name, fn, *args)
        if fn == self.tools.get_row:
            table, key = args
            self.note_read(Read.of_tool("get_row", table, {"key": key}, result))
        elif fn == self.tools.find_rows:
            table, where, *rest = args
            limit = rest[0] if rest else FIND_LIMIT
            self.note_read(
                Read.of_tool("find_rows", table, {"where": where, "limit": limit}, result)
            )
        return result

    async def check(self, proposal: Proposal) -> list[Problem]:
        """Validate *proposal* against the catalogue and the current rows, as a recorded step
        (so a replay takes the same branch): the problems, empty when it is valid."""
        self._checks += 1
        wire = proposal.to_wire()
        found = await self.record(f"check {self._checks}", self._check_json, wire)
        return [Problem.from_json(item) for item in found]

    async def _check_json(self, wire: dict[str, Any]) -> list[dict[str, Any]]:
        proposal = Proposal.model_validate(wire)

        def run() -> list[dict[str, Any]]:
            try:
                validate(proposal, self.catalogue, self.tools.target, max_rows=self.max_rows)
            except ProposalInvalid as exc:
                return [p.to_json() for p in exc.problems]
            return []

        return await asyncio.to_thread(run)


class Proposer(Protocol):
    """Turns a request into a proposal that passed `session.check`, or raises `ProposerFailed`."""

    @property
    def label(self) -> str:
        """Shown to reviewers: ``offline (demo)`` or ``openai:gpt-4o``."""
        ...

    async def propose(self, session: ProposalSession) -> Proposal: ...


def tool_result_text(value: Any) -> str:
    """A tool's result as the text a model reads."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
