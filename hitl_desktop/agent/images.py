"""What an apply wrote, row by row: the images a revert is built from.

The apply step records one `RowImage` per change it wrote, in its locked transaction: the row
before (updates and deletes: the locked row, which matched the review's fingerprint) and after
(inserts and updates: read back after the write, so generated keys, defaults and triggers are
in it). They are kept in the step's result (the run's `Outcome`) and in the target's marker
row, so that a replay after a crash records the same images.

Images hold the columns visible to the agent only: a deleted row of a table with hidden columns
cannot be restored whole, and is marked so (`hidden`); a revert refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .coerce import JSONValue
from .diff import Diff, fingerprint
from .proposal import RowChange

_FIELDS = ("index", "op", "table", "key", "before", "after", "hidden")


@dataclass(frozen=True, slots=True)
class RowImage:
    """One written row: its key, and its visible columns before and after the write."""

    index: int
    """The change's index in the applied proposal."""
    op: str
    table: str
    key: dict[str, JSONValue]
    """The row's primary key (a generated one included); empty: the table has none."""
    before: dict[str, JSONValue] | None
    """None for an insert."""
    after: dict[str, JSONValue] | None
    """None for a delete."""
    hidden: bool = False
    """The table has columns hidden from the agent: they are not in the images."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "table": self.table,
            "key": dict(self.key),
            "before": None if self.before is None else dict(self.before),
            "after": None if self.after is None else dict(self.after),
            "hidden": self.hidden,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RowImage:
        if not isinstance(data, Mapping) or set(data) != set(_FIELDS):
            raise ValueError(f"a row image has exactly the fields {', '.join(_FIELDS)}")
        if data["op"] not in ("insert", "update", "delete"):
            raise ValueError(f"unknown op {data['op']!r} in a row image")
        return cls(
            index=int(data["index"]),
            op=str(data["op"]),
            table=str(data["table"]),
            key=dict(data["key"]),
            before=None if data["before"] is None else dict(data["before"]),
            after=None if data["after"] is None else dict(data["after"]),
            hidden=bool(data["hidden"]),
        )


def images_from_json(data: Sequence[Mapping[str, Any]]) -> tuple[RowImage, ...]:
    return tuple(RowImage.from_json(item) for item in data)


class NotRevertible(ValueError):
    """Written rows whose inverse cannot be written (the message says which and why)."""


def _show(image: RowImage) -> str:
    key = ", ".join(f"{k}={v!r}" for k, v in image.key.items())
    return f"change {image.index} ({image.op} of {image.table}{' ' + key if key else ''})"


def _reverted(image: RowImage) -> dict[str, JSONValue]:
    """The columns an update's inverse sets back: those whose value the write changed."""
    before, after = image.before or {}, image.after or {}
    return {name: before[name] for name in before if name in after and after[name] != before[name]}


def inverse(images: Sequence[RowImage]) -> tuple[list[RowChange], list[Diff]]:
    """The changes that undo *images* (last written, first undone) and their diffs, whose
    "before" and fingerprint are the rows as the apply left them: a row changed since is a
    conflict when the inverse is applied. Raises `NotRevertible` naming each change that
    cannot be undone; an update that changed no visible value has nothing to undo."""
    problems: list[str] = []
    changes: list[RowChange] = []
    diffs: list[Diff] = []
    for image in reversed(images):
        if not image.key:
            problems.append(f"{_show(image)}: the table has no primary key to find the row by")
            continue
        if image.op == "insert":
            if image.after is None:
                problems.append(f"{_show(image)}: the inserted row was not recorded")
                continue
            change = RowChange(op="delete", table=image.table, key=image.key)
            diff = Diff(
                len(changes),
                "delete",
                image.table,
                dict(image.key),
                dict(image.after),
                None,
                tuple(image.after),
                fingerprint(image.after),
            )
        elif image.op == "update":
            if image.before is None or image.after is None:
                problems.append(f"{_show(image)}: the row was not recorded")
                continue
            values = _reverted(image)
            if not values:
                continue
            change = RowChange(op="update", table=image.table, key=image.key, values=values)
            diff = Diff(
                len(changes),
                "update",
                image.table,
                dict(image.key),
                dict(image.after),
                {**image.after, **values},
                tuple(values),
                fingerprint(image.after),
            )
        else:
            if image.before is None:
                problems.append(f"{_show(image)}: the deleted row was not recorded")
                continue
            if image.hidden:
                problems.append(
                    f"{_show(image)}: the table has columns hidden from the agent, which "
                    "were not recorded, so the row cannot be restored whole"
                )
                continue
            values = {k: v for k, v in image.before.items() if k not in image.key}
            change = RowChange(op="insert", table=image.table, key=image.key, values=values)
            diff = Diff(
                len(changes),
                "insert",
                image.table,
                dict(image.key),
                None,
                dict(image.before),
                tuple(image.before),
                fingerprint(None),
            )
        changes.append(change)
        diffs.append(diff)
    if problems:
        raise NotRevertible("; ".join(problems))
    if not changes:
        raise NotRevertible("the apply changed no value visible to the agent: nothing to undo")
    return changes, diffs
