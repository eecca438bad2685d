"""The proposal's read set: what the proposer read and relied on, fingerprinted for the apply step.

A proposal is only as right as the rows it was based on. Refunding $20 on an invoice relies on the
invoice being paid and on the refunds already made on it, rows the proposal does not write, so
the write-set fingerprints of `diff` cannot see them change. Every read the proposer makes through
the read tools (`get_row`, `find_rows`) becomes a `Read`: the table, the arguments, the rows the
tool returned and a fingerprint of them. The parent rows of inserted rows (the rows their foreign
keys point at) are added as ``parent`` reads.

Reads are derived from what the run's recorded steps returned, never from side effects a replay
would skip, so a resumed run has the same read set. The apply step re-runs every read through its
locked connection (`read_check`) and ends the run ``conflict`` when one no longer returns what the
reviewer's proposal relied on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from ._bind import Bind, connection
from ._rows import key_of, select_matching
from .catalogue import Catalogue, ForeignKeyInfo
from .coerce import JSONValue, json_row
from .diff import canonical_json, value_text
from .validation import ValidatedChange, ValidatedProposal

if TYPE_CHECKING:
    from .review import Review

ReadTool = Literal["get_row", "find_rows", "parent"]
READ_TOOLS: tuple[ReadTool, ...] = ("get_row", "find_rows", "parent")

Row = dict[str, JSONValue]


def rows_fingerprint(rows: Sequence[Mapping[str, JSONValue]]) -> str:
    """sha256 of the canonical JSON of a read's rows, in the order the read returned them."""
    return hashlib.sha256(canonical_json([dict(row) for row in rows]).encode("utf-8")).hexdigest()


def _show(match: Mapping[str, JSONValue]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in match.items())


@dataclass(frozen=True, slots=True)
class Read:
    """One read the proposal relied on, with the rows it returned.

    ``get_row`` and ``parent`` reads match a key (``parent``: the referenced columns of a foreign
    key of an inserted row), ``find_rows`` reads a filter and a limit. Rows hold the visible
    columns the read returned; a parent row in a table hidden from the agent holds no columns
    (only whether it exists counts).
    """

    tool: ReadTool
    table: str
    match: dict[str, JSONValue]
    """The key (get_row, parent) or the filter (find_rows), column → JSON value."""
    rows: tuple[Row, ...]
    fingerprint: str
    limit: int | None = None
    """The limit the find_rows call asked for (None for key reads)."""

    @classmethod
    def of(
        cls,
        tool: ReadTool,
        table: str,
        match: Mapping[str, JSONValue],
        rows: Iterable[Mapping[str, JSONValue]],
        limit: int | None = None,
    ) -> Read:
        found = tuple(dict(row) for row in rows)
        return cls(tool, table, dict(match), found, rows_fingerprint(found), limit)

    @classmethod
    def of_tool(cls, tool: str, table: str, args: Mapping[str, Any], result: Any) -> Read:
        """The read a tool call made: *args* as the tool took them (``key``, or ``where`` and
        ``limit``), *result* as it returned it (a row or None, a list of rows)."""
        if tool == "get_row":
            return cls.of("get_row", table, args["key"], [] if result is None else [result])
        if tool == "find_rows":
            return cls.of("find_rows", table, args["where"], result, int(args["limit"]))
        raise ValueError(f"{tool!r} is not a read tool")

    def describe(self) -> str:
        """The read for people: ``invoices id=1042``, ``refunds where invoice_id=1042``."""
        if self.tool == "find_rows":
            return f"{self.table} where {_show(self.match)}" if self.match else self.table
        return f"{self.table} {_show(self.match)}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"tool": self.tool, "table": self.table}
        if self.tool == "find_rows":
            data["where"] = dict(self.match)
            data["limit"] = self.limit
        else:
            data["key"] = dict(self.match)
        data["rows"] = [dict(row) for row in self.rows]
        data["fingerprint"] = self.fingerprint
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Read:
        tool = data.get("tool")
        if tool not in READ_TOOLS:
            raise ValueError(f"unknown read tool {tool!r}")
        match = data["where"] if tool == "find_rows" else data["key"]
        limit = data.get("limit") if tool == "find_rows" else None
        return cls(
            tool=tool,
            table=str(data["table"]),
            match=dict(match),
            rows=tuple(dict(row) for row in data["rows"]),
            fingerprint=str(data["fingerprint"]),
            limit=None if limit is None else int(limit),
        )

    @property
    def identity(self) -> str:
        """What was read, without what it returned (parent reads are matched by it)."""
        return canonical_json([self.tool, self.table, self.match, self.limit])


def unique_reads(reads: Iterable[Read]) -> tuple[Read, ...]:
    """*reads* in order, each identical read (same arguments, same rows) once."""
    seen: dict[tuple[str, str], Read] = {}
    for read in reads:
        seen.setdefault((read.identity, read.fingerprint), read)
    return tuple(seen.values())


def reads_to_json(reads: Iterable[Read]) -> list[dict[str, Any]]:
    return [read.to_json() for read in reads]


def reads_from_json(data: Iterable[Mapping[str, Any]]) -> tuple[Read, ...]:
    return tuple(Read.from_json(item) for item in data)


# ------------------------------------------------------------ parent rows of inserted rows


def _parent_keys(
    catalogue: Catalogue, changes: Sequence[ValidatedChange]
) -> list[tuple[ForeignKeyInfo, tuple[Any, ...]]]:
    """(foreign key, referenced values) for each foreign key of an inserted row whose values are
    all given, except references to rows the proposal inserts itself."""
    wanted: dict[tuple[ForeignKeyInfo, tuple[Any, ...]], None] = {}
    for change in changes:
        if change.op != "insert":
            continue
        row = change.row
        for fk in catalogue[change.table].foreign_keys:
            if not set(fk.columns) <= set(row) or any(row[c] is None for c in fk.columns):
                continue
            if not catalogue.reflected(fk.ref_table):
                continue  # in another schema: the database's own check covers it
            ref = key_of(row, fk.columns)
            alongside = {
                key_of(c.row, fk.ref_columns)
                for c in changes
                if c.op == "insert"
                and c.table == fk.ref_table
                and set(fk.ref_columns) <= set(c.row)
            }
            if ref not in alongside:
                wanted[(fk, ref)] = None
    return list(wanted)


def _parent_read(
    conn: sa.Connection, catalogue: Catalogue, fk: ForeignKeyInfo, ref: tuple[Any, ...]
) -> Read:
    info = catalogue.get(fk.ref_table)
    visible = info.column_names if info is not None else ()
    core = catalogue.core_table(fk.ref_table)
    found = select_matching(conn, core, fk.ref_columns, [ref], visible)
    # A hidden table's row shows nothing: only whether it is there is relied on.
    rows = [json_row({name: row[name] for name in visible}) for row in found]
    return Read.of(
        "parent", fk.ref_table, json_row(dict(zip(fk.ref_columns, ref, strict=True))), rows
    )


def parent_reads(validated: ValidatedProposal, target: Bind) -> tuple[Read, ...]:
    """A ``parent`` read for each row an inserted row refers to (visible columns only)."""
    catalogue = validated.catalogue
    wanted = _parent_keys(catalogue, validated.changes)
    if not wanted:
        return ()
    with connection(target) as conn:
        return unique_reads(_parent_read(conn, catalogue, fk, ref) for fk, ref in wanted)


# ------------------------------------------------------------ what a reviewer is shown

FEW_FIELDS = 3
"""Columns shown per row when the proposal names fewer of them (filled in the row's order)."""
MOST_FIELDS = 5
"""Columns shown per row at most, besides a listed row's first column."""
SHOWN_ROWS = 3
"""Rows shown per read; a read of more shows its count and these first ones."""
LONGEST_VALUE = 40


def _short(value: JSONValue) -> str:
    text = " ".join(value_text(value).split())
    return text if len(text) <= LONGEST_VALUE else text[: LONGEST_VALUE - 1] + "…"


@dataclass(frozen=True, slots=True)
class ReliedOn:
    """One read as a reviewer is shown it: what was read, how many rows it returned and, for
    each row, the columns that mattered (`fields`)."""

    read: Read
    fields: tuple[str, ...]
    """The columns shown for every row. First, for a ``find_rows`` read, each row's first
    column (its key in the usual table); then the columns whose value the proposal copies into
    its changes or quotes in its summary or rationale; fewer than `FEW_FIELDS` of those are
    filled up with the row's next columns. The read's own key or filter is in `heading`."""

    @property
    def heading(self) -> str:
        """``invoices id=1042``, ``refunds where invoice_id=1042: 2 rows``, ``…: not found``."""
        read, n = self.read, len(self.read.rows)
        if read.tool == "find_rows":
            count = "no rows" if n == 0 else f"{n} row" if n == 1 else f"{n} rows"
            return f"{read.describe()}: {count}"
        return read.describe() if n else f"{read.describe()}: not found"

    def row_text(self, row: Mapping[str, JSONValue]) -> str:
        """``number INV-001042 · status paid · amount 90.00``."""
        if not row:
            return "(the row exists; its columns are hidden from the agent)"
        return " · ".join(f"{name} {_short(row[name])}" for name in self.fields if name in row)

    def lines(self) -> tuple[str, ...]:
        """The text of the first `SHOWN_ROWS` rows, then how many more there are."""
        rows = self.read.rows
        shown = tuple(self.row_text(row) for row in rows[:SHOWN_ROWS])
        more = len(rows) - SHOWN_ROWS
        return (*shown, f"… and {more} more") if more > 0 else shown


def _mentions(text: str, value: str) -> bool:
    """Whether *text* quotes *value* as a whole word or number (``$90.00`` quotes ``90.00``)."""
    pattern = rf"(?<![\w.-]){re.escape(value)}(?![\w-]|\.\d)"
    return re.search(pattern, text) is not None


def _fields(read: Read, text: str, copied: set[str]) -> tuple[str, ...]:
    """The columns of `ReliedOn.fields`; *copied*: the values the proposal writes into other
    tables than the read's (a new refund sharing a status with an old one copies nothing)."""
    columns = [c for c in dict.fromkeys(c for row in read.rows for c in row) if c not in read.match]
    first = [columns[0]] if read.tool == "find_rows" and columns else []
    rest = [c for c in columns if c not in first]

    def used(column: str) -> bool:
        for row in read.rows:
            value = row.get(column)
            if value is None or isinstance(value, bool):
                continue
            shown = value_text(value)
            if shown in copied or (len(shown) >= 2 and _mentions(text, shown)):
                return True
        return False

    picked = [c for c in rest if used(c)][:MOST_FIELDS]
    for column in rest:
        if len(picked) >= FEW_FIELDS:
            break
        if column not in picked:
            picked.append(column)
    return (*first, *(c for c in rest if c in picked))


def relied_on(review: Review) -> tuple[ReliedOn, ...]:
    """What *review*'s proposal relied on, for a reviewer: each read once (a parent read of a row
    the proposer also read by its key is the same rows), with the fields that mattered."""
    text = f"{review.summary}\n{review.rationale}"
    written: dict[str, set[str]] = {}
    for diff in review.diffs:
        values = written.setdefault(diff.table, set())
        values.update(value_text(v) for v in diff.key.values() if v is not None)
        after = diff.after or {}
        values.update(value_text(after[c]) for c in diff.changed if after.get(c) is not None)
    seen: set[tuple[str, str, str]] = set()
    shown: list[ReliedOn] = []
    for read in review.reads:
        same = (read.table, canonical_json(read.match), read.fingerprint)
        if same in seen:
            continue
        seen.add(same)
        copied = set().union(*(v for t, v in written.items() if t != read.table))
        shown.append(ReliedOn(read, _fields(read, text, copied)))
    return tuple(shown)
