"""Validating a proposal against the catalogue and the target database, every problem at once.

Approval is not an authorization boundary: the apply step validates again, inside its own
transaction, before it writes (pass its Connection as the target).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from ._bind import AsyncBind, Bind, connection, run_sync
from ._rows import key_of, select_matching
from .catalogue import Catalogue, ColumnInfo, ForeignKeyInfo, TableInfo
from .coerce import CoercionError, coerce_value
from .errors import Problem, ProblemCode, ProposalInvalid
from .proposal import Op, Proposal, RowChange, Scalar

DEFAULT_MAX_ROWS = 50


@dataclass(frozen=True, slots=True)
class ValidatedChange:
    """A change whose names are the catalogue's and whose values are coerced to their columns."""

    index: int
    op: Op
    table: str
    key: Mapping[str, Any]
    """Primary key → value; empty for an insert whose key the database generates."""
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", MappingProxyType(dict(self.key)))
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    @property
    def row(self) -> dict[str, Any]:
        """Key and values together: what an insert writes."""
        return {**self.key, **self.values}


@dataclass(frozen=True, eq=False)
class ValidatedProposal:
    proposal: Proposal
    catalogue: Catalogue
    changes: tuple[ValidatedChange, ...]
    checked_database: bool
    """False when validated without a target: rows, keys and references were not looked up."""

    @property
    def tables(self) -> tuple[str, ...]:
        return self.proposal.tables


@dataclass
class _Report:
    problems: list[Problem] = field(default_factory=list)

    def add(
        self, index: int | None, table: str | None, column: str | None, code: ProblemCode, msg: str
    ) -> None:
        self.problems.append(Problem(index, table, column, code, msg))


def _show_key(key: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in key.items())


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


_BAD = object()
"""What `_coerce` returns for a value it refused (the problem is already reported)."""


def _coerce(
    report: _Report, index: int, table: str, column: ColumnInfo, raw: Scalar, is_key: bool
) -> Any:
    if raw is None:
        if is_key:
            report.add(index, table, column.name, "bad_key", "a primary-key value cannot be null")
            return _BAD
        if not column.nullable:
            report.add(index, table, column.name, "not_null", "this column cannot be null")
        return None
    try:
        return coerce_value(raw, column)
    except CoercionError as exc:
        report.add(index, table, column.name, "bad_value", f"{exc} (column is {column.kind})")
        return _BAD


def _check_shape(report: _Report, index: int, change: RowChange, info: TableInfo) -> None:
    table, pk = change.table, info.primary_key
    op, key, values = change.op, change.key, change.values
    if op != "insert" and not pk:
        report.add(
            index,
            table,
            None,
            "bad_key",
            "the table has no primary key, so rows of it "
            "cannot be addressed; only inserts are possible",
        )
    elif (op != "insert" or key) and set(key) != set(pk):
        wanted = ", ".join(pk)
        got = ", ".join(key) or "nothing"
        if op == "insert":
            wanted += " (or leave the key empty when the database generates it)"
        report.add(
            index,
            table,
            None,
            "bad_key",
            f"the key must be exactly the primary key ({wanted}); got {got}",
        )
    if op == "delete" and values:
        report.add(index, table, None, "bad_shape", "a delete takes no values")
    if op == "update" and not values:
        report.add(index, table, None, "bad_shape", "an update needs at least one value")
    if op == "update":
        for name in sorted(set(values) & set(pk)):
            report.add(index, table, name, "bad_shape", "a primary key cannot be changed")
    if op == "insert":
        for name in sorted(set(values) & set(key)):
            report.add(index, table, name, "bad_shape", "given in both key and values")
        if info.hidden_required:
            report.add(
                index,
                table,
                None,
                "bad_shape",
                "inserts into this table are not possible: "
                "a required column is not available to the agent",
            )


def _check_change(
    report: _Report, catalogue: Catalogue, index: int, change: RowChange
) -> ValidatedChange | None:
    """The change with every value that could be coerced; None if its table is not available.

    A change with problems is still returned, without the refused values, so that the checks
    against the database can report their problems in the same round.
    """
    table = change.table
    info = catalogue.get(table)
    if info is None:
        if catalogue.is_hidden_table(table):
            report.add(index, table, None, "denied_table", "this table may not be changed")
        else:
            hint = _hint(table, list(catalogue.tables))
            report.add(index, table, None, "unknown_table", f"there is no table {table!r}{hint}")
        return None
    _check_shape(report, index, change, info)
    key = {
        name: _coerce(report, index, table, col, raw, is_key=True)
        for name, raw in change.key.items()
        if (col := info.column(name)) is not None and name in info.primary_key
    }
    values: dict[str, Any] = {}
    for name, raw in change.values.items():
        col = info.column(name)
        if col is None:
            if catalogue.is_hidden_column(table, name):
                report.add(index, table, name, "denied_column", "this column may not be changed")
            else:
                hint = _hint(name, info.column_names)
                report.add(
                    index, table, name, "unknown_column", f"there is no column {name!r}{hint}"
                )
        elif col.generated:
            report.add(
                index,
                table,
                name,
                "read_only_column",
                "this column is generated by the database and cannot be written",
            )
        else:
            values[name] = _coerce(report, index, table, col, raw, is_key=False)
    if change.op == "insert":
        for col in info.columns:
            if col.required and col.name not in change.key and col.name not in change.values:
                report.add(
                    index,
                    table,
                    col.name,
                    "not_null",
                    "required on insert: not null and no default",
                )
    key = {name: value for name, value in key.items() if value is not _BAD}
    if set(change.key) != set(info.primary_key):
        key = {}  # a row that is not addressed exactly is not looked up either
    values = {name: value for name, value in values.items() if value is not _BAD}
    return ValidatedChange(index, change.op, table, key, values)


def _row_id(change: ValidatedChange, info: TableInfo) -> tuple[Any, ...] | None:
    """The primary key of the row a change addresses; for an insert also a key given among its
    values (a reviewer's edit may set one), so that an existing key is a problem, not an
    IntegrityError at write time."""
    pk = info.primary_key
    given = change.row if change.op == "insert" else change.key
    if not pk or not set(pk) <= set(given) or any(given[name] is None for name in pk):
        return None
    if change.op != "insert" and set(change.key) != set(pk):
        return None
    return key_of(dict(given), pk)


def _shown_id(change: ValidatedChange, info: TableInfo) -> str:
    given = change.row if change.op == "insert" else change.key
    return _show_key({name: given[name] for name in info.primary_key})


def _check_duplicates(
    report: _Report, catalogue: Catalogue, changes: list[ValidatedChange]
) -> None:
    seen: dict[tuple[str, tuple[Any, ...]], int] = {}
    for change in changes:
        row_id = _row_id(change, catalogue[change.table])
        if row_id is None:
            continue
        first = seen.setdefault((change.table, row_id), change.index)
        if first != change.index:
            report.add(
                change.index,
                change.table,
                None,
                "duplicate_row",
                f"change {first} already touches the row "
                f"{_shown_id(change, catalogue[change.table])}; merge them into one change",
            )


def _check_rows_exist(
    report: _Report, conn: sa.Connection, catalogue: Catalogue, changes: list[ValidatedChange]
) -> None:
    """Updates and deletes need their row; inserts with a key must not find one."""
    by_table: dict[str, list[tuple[ValidatedChange, tuple[Any, ...]]]] = {}
    for change in changes:
        row_id = _row_id(change, catalogue[change.table])
        if row_id is not None:
            by_table.setdefault(change.table, []).append((change, row_id))
    for table, items in by_table.items():
        pk = catalogue[table].primary_key
        rows = select_matching(conn, catalogue.core_table(table), pk, [r for _, r in items])
        found = {key_of(row, pk) for row in rows}
        for change, row_id in items:
            if change.op != "insert" and row_id not in found:
                report.add(
                    change.index,
                    table,
                    None,
                    "row_missing",
                    f"there is no row with {_show_key(change.key)}",
                )
            elif change.op == "insert" and row_id in found:
                report.add(
                    change.index,
                    table,
                    None,
                    "row_exists",
                    f"{table} {_shown_id(change, catalogue[table])} already exists",
                )


def _deleted(changes: list[ValidatedChange], catalogue: Catalogue, fk: ForeignKeyInfo) -> set[Any]:
    """Keys (in *fk*'s referenced columns) of the rows of its table that the proposal deletes."""
    return {
        key_of(dict(c.key), fk.ref_columns)
        for c in changes
        if c.op == "delete" and c.table == fk.ref_table and set(fk.ref_columns) <= set(c.key)
    }


def _check_references(
    report: _Report, conn: sa.Connection, catalogue: Catalogue, changes: list[ValidatedChange]
) -> None:
    """Every foreign key written must point at a row that exists (or is inserted alongside)."""
    wanted: dict[ForeignKeyInfo, list[tuple[ValidatedChange, tuple[Any, ...]]]] = {}
    for change in changes:
        if change.op == "delete":
            continue
        row = change.row if change.op == "insert" else dict(change.values)
        for fk in catalogue[change.table].foreign_keys:
            # A partly given composite key of an update is left to the database's own check.
            if set(fk.columns) <= set(row) and all(row[c] is not None for c in fk.columns):
                wanted.setdefault(fk, []).append((change, key_of(row, fk.columns)))
    for fk, items in wanted.items():
        if not catalogue.reflected(fk.ref_table):
            continue  # in another schema: left to the database's own check
        inserted = {
            key_of(c.row, fk.ref_columns)
            for c in changes
            if c.op == "insert" and c.table == fk.ref_table and set(fk.ref_columns) <= set(c.row)
        }
        core = catalogue.core_table(fk.ref_table)
        rows = select_matching(conn, core, fk.ref_columns, [ref for _, ref in items])
        found = ({key_of(row, fk.ref_columns) for row in rows} | inserted) - _deleted(
            changes, catalogue, fk
        )
        for change, ref in items:
            if ref not in found:
                shown = _show_key(dict(zip(fk.ref_columns, ref, strict=True)))
                report.add(
                    change.index,
                    change.table,
                    fk.columns[0],
                    "fk_missing",
                    f"points to no row of {fk.ref_table} ({shown})",
                )


def _check_inbound(
    report: _Report, conn: sa.Connection, catalogue: Catalogue, changes: list[ValidatedChange]
) -> None:
    """A deleted row must not stay referenced: no dangling keys, and no cascades the diff hides."""
    for change in changes:
        if change.op != "delete":
            continue
        for fk in catalogue.inbound_foreign_keys(change.table):
            if not set(fk.ref_columns) <= set(change.key) or not catalogue.reflected(fk.table):
                continue
            child = catalogue.core_table(fk.table)
            child_pk = [c.name for c in child.primary_key.columns]
            ref = key_of(dict(change.key), fk.ref_columns)
            rows = select_matching(conn, child, fk.columns, [ref], child_pk, limit=1000)
            gone = {
                key_of(dict(c.key), child_pk)
                for c in changes
                if c.table == fk.table
                and child_pk
                and (c.op == "delete" or (c.op == "update" and set(fk.columns) & set(c.values)))
            }
            left = [row for row in rows if not child_pk or key_of(row, child_pk) not in gone]
            if left:
                where = (
                    f"{fk.table}.{', '.join(fk.columns)}"
                    if catalogue.get(fk.table) is not None
                    else "a table the agent cannot see"
                )
                more = "+" if len(rows) >= 1000 else ""
                report.add(
                    change.index,
                    change.table,
                    None,
                    "fk_referenced",
                    f"{len(left)}{more} row(s) of {where} still refer to this row; "
                    "change or delete them first in the same proposal",
                )


def validate(
    proposal: Proposal,
    catalogue: Catalogue,
    target: Bind | None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> ValidatedProposal:
    """Check *proposal* against *catalogue* and, unless *target* is None, the rows of the target
    database. Return the coerced changes, or raise `ProposalInvalid` listing every problem.

    Checks against the database (rows that must or must not exist, foreign keys) run only when
    the proposal is otherwise within *max_rows*.
    """
    report = _Report()
    if not proposal.changes:
        report.add(None, None, None, "bad_shape", "the proposal has no changes")
    if len(proposal.changes) > max_rows:
        report.add(
            None,
            None,
            None,
            "too_many_rows",
            f"the proposal changes {len(proposal.changes)} rows, over the limit of {max_rows}",
        )
    checked = [
        _check_change(report, catalogue, index, change)
        for index, change in enumerate(proposal.changes)
    ]
    changes = [change for change in checked if change is not None]
    _check_duplicates(report, catalogue, changes)
    use_db = target is not None and len(proposal.changes) <= max_rows
    if target is not None and use_db:
        with connection(target) as conn:
            _check_rows_exist(report, conn, catalogue, changes)
            _check_references(report, conn, catalogue, changes)
            _check_inbound(report, conn, catalogue, changes)
    if report.problems:
        # Proposal-wide problems first, then by change, each change's in the order found.
        raise ProposalInvalid(
            sorted(report.problems, key=lambda p: -1 if p.index is None else p.index)
        )
    return ValidatedProposal(proposal, catalogue, tuple(changes), checked_database=use_db)


async def validate_async(
    proposal: Proposal,
    catalogue: Catalogue,
    target: AsyncBind,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> ValidatedProposal:
    """`validate` without blocking the event loop."""
    return await run_sync(
        target, lambda conn: validate(proposal, catalogue, conn, max_rows=max_rows)
    )
