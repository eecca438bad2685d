"""Batched reads of rows by column values: the only SELECTs the validation and the diff issue.

Tables and columns are Core objects from the catalogue; the values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

CHUNK = 200
"""Rows per statement: keeps the parameter count under SQLite's limit for composite keys too."""


def select_matching(
    conn: sa.Connection,
    table: sa.Table,
    match: Sequence[str],
    tuples: Iterable[tuple[Any, ...]],
    columns: Sequence[str] = (),
    *,
    limit: int | None = None,
    for_update: bool = False,
) -> list[dict[str, Any]]:
    """Rows of *table* whose *match* columns equal one of *tuples*, as dicts of *match* and
    *columns*. One statement per chunk of tuples; *limit* caps the rows of each statement."""
    wanted = list(dict.fromkeys(tuples))
    names = list(dict.fromkeys([*match, *columns]))
    selected = [table.c[name] for name in names]
    rows: list[dict[str, Any]] = []
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        where: sa.ColumnElement[bool]
        if len(match) == 1:
            where = table.c[match[0]].in_([values[0] for values in chunk])
        else:
            where = sa.or_(
                *(
                    sa.and_(
                        *(table.c[name] == value for name, value in zip(match, values, strict=True))
                    )
                    for values in chunk
                )
            )
        query = sa.select(*selected).where(where)
        if limit is not None:
            query = query.limit(limit)
        if for_update:
            query = query.with_for_update()
        rows.extend(dict(row._mapping) for row in conn.execute(query))
    return rows


def key_of(row: dict[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[name] for name in columns)
