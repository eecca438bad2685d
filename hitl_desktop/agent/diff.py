"""Before → after for each validated change, with a fingerprint of the row as it was read.

A diff is plain JSON: it is stored with the proposal and shown by the console without querying the
target again. The apply step calls `find_conflicts` inside its locked transaction: a row whose
fingerprint changed since the proposal means nothing is written.

Only the columns visible in the catalogue are read, shown and fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ._bind import AsyncBind, Bind, connection, run_sync
from ._rows import key_of, select_matching
from .catalogue import Catalogue
from .coerce import CoercionError, JSONValue, coerce_value, json_row
from .errors import Problem, ProposalInvalid
from .proposal import Op
from .validation import ValidatedChange, ValidatedProposal

_FIELDS = ("index", "op", "table", "key", "before", "after", "changed", "fingerprint")


def canonical_json(value: JSONValue) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def value_text(value: JSONValue) -> str:
    """A column value as a reviewer reads it: text as it is, null, true/false, else its JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def fingerprint(before: Mapping[str, JSONValue] | None) -> str:
    """sha256 of the canonical JSON of a row's values (of null for a row that is not there)."""
    data = None if before is None else dict(before)
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Diff:
    index: int
    op: Op
    table: str
    key: dict[str, JSONValue]
    """The row's primary key; empty for an insert whose key the database generates."""
    before: dict[str, JSONValue] | None
    after: dict[str, JSONValue] | None
    changed: tuple[str, ...]
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        """A JSON value (a dict) for json.dumps or the engine's store."""
        return {
            "index": self.index,
            "op": self.op,
            "table": self.table,
            "key": dict(self.key),
            "before": None if self.before is None else dict(self.before),
            "after": None if self.after is None else dict(self.after),
            "changed": list(self.changed),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diff:
        if set(data) != set(_FIELDS):
            raise ValueError(
                f"a diff has exactly the fields {', '.join(_FIELDS)}; got {sorted(data)}"
            )
        if data["op"] not in ("insert", "update", "delete"):
            raise ValueError(f"unknown op {data['op']!r}")
        return cls(
            index=int(data["index"]),
            op=data["op"],
            table=str(data["table"]),
            key=dict(data["key"]),
            before=None if data["before"] is None else dict(data["before"]),
            after=None if data["after"] is None else dict(data["after"]),
            changed=tuple(data["changed"]),
            fingerprint=str(data["fingerprint"]),
        )


def diffs_to_json(diffs: Sequence[Diff]) -> list[dict[str, Any]]:
    return [diff.to_json() for diff in diffs]


def diffs_from_json(data: Sequence[Mapping[str, Any]]) -> list[Diff]:
    return [Diff.from_json(item) for item in data]


def read_rows(
    conn: sa.Connection,
    catalogue: Catalogue,
    table: str,
    keys: Sequence[tuple[Any, ...]],
    *,
    for_update: bool = False,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The visible columns of the rows with these primary keys, by key; one query per chunk."""
    info = catalogue[table]
    rows = select_matching(
        conn,
        catalogue.core_table(table),
        info.primary_key,
        keys,
        info.column_names,
        for_update=for_update,
    )
    return {key_of(row, info.primary_key): row for row in rows}


def _diff(change: ValidatedChange, catalogue: Catalogue, current: dict[str, Any] | None) -> Diff:
    info = catalogue[change.table]
    order = info.column_names
    key = json_row(change.key)
    if change.op == "insert":
        after = json_row({name: change.row[name] for name in order if name in change.row})
        return Diff(
            change.index, "insert", change.table, key, None, after, tuple(after), fingerprint(None)
        )
    assert current is not None
    before = json_row({name: current[name] for name in order})
    if change.op == "delete":
        return Diff(
            change.index, "delete", change.table, key, before, None, order, fingerprint(before)
        )
    after = {**before, **json_row(change.values)}
    changed = tuple(n for n in order if n in change.values and current[n] != change.values[n])
    return Diff(
        change.index, "update", change.table, key, before, after, changed, fingerprint(before)
    )


def diff_conn(
    conn: sa.Connection, validated: ValidatedProposal, *, for_update: bool = False
) -> list[Diff]:
    catalogue = validated.catalogue
    wanted: dict[str, list[tuple[Any, ...]]] = {}
    for change in validated.changes:
        if change.op != "insert":
            wanted.setdefault(change.table, []).append(
                key_of(dict(change.key), catalogue[change.table].primary_key)
            )
    current = {
        table: read_rows(conn, catalogue, table, keys, for_update=for_update)
        for table, keys in wanted.items()
    }
    missing: list[Problem] = []
    diffs: list[Diff] = []
    for change in validated.changes:
        row = None
        if change.op != "insert":
            row = current[change.table].get(
                key_of(dict(change.key), catalogue[change.table].primary_key)
            )
            if row is None:
                shown = ", ".join(f"{k}={v!r}" for k, v in change.key.items())
                missing.append(
                    Problem(
                        change.index,
                        change.table,
                        None,
                        "row_missing",
                        f"there is no row with {shown}",
                    )
                )
                continue
        diffs.append(_diff(change, catalogue, row))
    if missing:
        raise ProposalInvalid(missing)
    return diffs


def diff_proposal(validated: ValidatedProposal, target: Bind) -> list[Diff]:
    """Read the current rows and return one `Diff` per change, in the proposal's order.

    Raises `ProposalInvalid` if a row to update or delete is gone (it was there at validation).
    """
    with connection(target) as conn:
        return diff_conn(conn, validated)


async def diff_proposal_async(validated: ValidatedProposal, target: AsyncBind) -> list[Diff]:
    return await run_sync(target, lambda conn: diff_conn(conn, validated))


@dataclass(frozen=True, slots=True)
class Conflict:
    """A row that changed between the proposal and the apply step."""

    index: int
    table: str
    key: dict[str, JSONValue]
    message: str
    columns: dict[str, tuple[JSONValue, JSONValue]]
    """Column → (value in the proposal's diff, value now), for rows that are still there."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "table": self.table,
            "key": dict(self.key),
            "message": self.message,
            "columns": {name: list(pair) for name, pair in self.columns.items()},
        }


def _db_key(diff: Diff, catalogue: Catalogue) -> tuple[Any, ...] | None:
    info = catalogue.get(diff.table)
    if info is None or set(diff.key) != set(info.primary_key) or not diff.key:
        return None
    values = []
    for name in info.primary_key:
        column = info.column(name)
        if column is None:
            return None
        try:
            values.append(coerce_value(diff.key[name], column))
        except CoercionError:
            return None
    return tuple(values)


def find_conflicts(
    conn: sa.Connection, catalogue: Catalogue, diffs: Sequence[Diff], *, for_update: bool = True
) -> list[Conflict]:
    """Re-read the rows of *diffs* (locking them where the dialect can) and list those that no
    longer match their fingerprint. Run it in the transaction that writes."""
    keys: dict[int, tuple[Any, ...]] = {}
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    conflicts: list[Conflict] = []
    for diff in diffs:
        if diff.op == "insert" and not diff.key:
            continue
        key = _db_key(diff, catalogue)
        if key is None:
            conflicts.append(
                Conflict(
                    diff.index,
                    diff.table,
                    diff.key,
                    "the table or its key is no longer in the catalogue",
                    {},
                )
            )
            continue
        keys[diff.index] = key
        by_table.setdefault(diff.table, []).append(key)
    current = {
        table: read_rows(conn, catalogue, table, table_keys, for_update=for_update)
        for table, table_keys in by_table.items()
    }
    for diff in diffs:
        if diff.index not in keys:
            continue
        row = current[diff.table].get(keys[diff.index])
        now = None if row is None else json_row(row)
        if fingerprint(now) == diff.fingerprint:
            continue
        if now is None:
            message = "the row was deleted since the proposal"
        elif diff.before is None:
            message = "a row with this key was created since the proposal"
        else:
            message = "the row changed since the proposal"
        columns = {}
        if now is not None and diff.before is not None:
            names = dict.fromkeys([*diff.before, *now])
            columns = {
                n: (diff.before.get(n), now.get(n))
                for n in names
                if diff.before.get(n) != now.get(n)
            }
        conflicts.append(Conflict(diff.index, diff.table, diff.key, message, columns))
    return conflicts
