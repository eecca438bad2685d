"""The apply step's check of the read set: every read of the proposal, run again under the lock.

`changed_reads` re-runs the proposer's tool reads through the apply step's locked connection with
the same `ReadTools` (the same query, the same coercion); `changed_parents` takes the parent rows
of the inserts again. A read whose rows differ from those the proposal relied on is a
`ReadConflict`, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._bind import Bind
from .catalogue import Catalogue
from .coerce import JSONValue
from .errors import AgentError
from .proposer import ReadTools
from .reads import Read, Row, parent_reads, rows_fingerprint
from .validation import ValidatedProposal


def _count(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


@dataclass(frozen=True, slots=True)
class ReadConflict:
    """A read that returns something else under the apply step's lock than when proposed."""

    read: Read
    message: str
    columns: dict[str, tuple[JSONValue, JSONValue]]
    """Column → (value when proposed, value now), for a single row that is still there."""

    def to_json(self) -> dict[str, Any]:
        """Shaped like `diff.Conflict.to_json()` (index None), plus what was read."""
        return {
            "index": None,
            "table": self.read.table,
            "key": dict(self.read.match),
            "message": self.message,
            "columns": {name: list(pair) for name, pair in self.columns.items()},
            "read": self.read.describe(),
            "tool": self.read.tool,
        }


def _compare(read: Read, now: Sequence[Row]) -> ReadConflict | None:
    if rows_fingerprint(now) == read.fingerprint:
        return None
    then = read.rows
    columns: dict[str, tuple[JSONValue, JSONValue]] = {}
    if read.tool == "find_rows":
        if len(then) != len(now):
            message = f"{_count(len(then))} when proposed, {_count(len(now))} now"
        else:
            message = f"{_count(len(now))} when proposed and now, but they changed since"
    elif then and not now:
        message = "the row was there when proposed and is gone now"
    elif now and not then:
        message = "there was no such row when proposed; there is one now"
    else:
        before, after = then[0], now[0]
        names = dict.fromkeys([*before, *after])
        columns = {n: (before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)}
        shown = ", ".join(f"{n} {a!r} → {b!r}" for n, (a, b) in columns.items())
        message = f"the row changed since the proposal ({shown})" if shown else "the row changed"
    return ReadConflict(read, message, columns)


def rerun(read: Read, tools: ReadTools) -> list[Row]:
    """The rows *read* returns now, through *tools* (the same query and coercion as the tool)."""
    if read.tool == "get_row":
        row = tools.get_row(read.table, read.match)
        return [] if row is None else [row]
    if read.tool == "find_rows":
        return tools.find_rows(read.table, read.match, read.limit or 10)
    raise ValueError(f"{read.tool} reads are re-run by changed_parents")


def changed_reads(conn: Bind, catalogue: Catalogue, reads: Iterable[Read]) -> list[ReadConflict]:
    """Re-run the tool reads of *reads* through *conn* (the apply step's locked transaction):
    those that return other rows than when proposed."""
    tools = ReadTools(catalogue, conn)
    conflicts: list[ReadConflict] = []
    for read in reads:
        if read.tool == "parent":
            continue
        try:
            now = rerun(read, tools)
        except AgentError as exc:
            conflicts.append(ReadConflict(read, f"it can no longer be read: {exc}", {}))
            continue
        conflict = _compare(read, now)
        if conflict is not None:
            conflicts.append(conflict)
    return conflicts


def changed_parents(
    conn: Bind, validated: ValidatedProposal, reads: Iterable[Read]
) -> list[ReadConflict]:
    """The parent rows of *validated*'s inserts that changed since the proposal read them.

    Parent reads are taken again from the proposal as it is applied (with the reviewer's
    edits) and compared with those of the review by what they read: a parent an edit no longer
    refers to is not relied on any more; one only an edit refers to has nothing to compare with
    (validation has checked that it exists)."""
    then = {read.identity: read for read in reads if read.tool == "parent"}
    if not then:
        return []
    conflicts: list[ReadConflict] = []
    for now in parent_reads(validated, conn):
        before = then.get(now.identity)
        if before is not None:
            conflict = _compare(before, now.rows)
            if conflict is not None:
                conflicts.append(conflict)
    return conflicts
