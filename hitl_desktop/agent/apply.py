"""The write: one locked transaction on the target that applies an approved proposal exactly once.

In that transaction, in order:

1. the marker table ``hitl_applied_writes`` is read: a row for (run, step) means this very write
   was committed before — the process died before the engine recorded the step — so nothing is
   written again;
2. the rows are locked (``BEGIN IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL) and
   compared with the fingerprints taken for the review: a row that changed means a conflict, and
   nothing is written;
3. the proposal (with the reviewer's edits) is validated again against the locked rows;
4. the changes are written with bound parameters (names only from the catalogue), and the marker
   row is inserted. Commit.

A kill at any point leaves either nothing or everything plus the marker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .catalogue import Catalogue
from .diff import Diff, find_conflicts
from .errors import AgentError, Problem, ProposalInvalid
from .proposal import Proposal, RowChange
from .review import Edit, Outcome, OutcomeKind
from .validation import ValidatedChange, validate

MARKERS = sa.Table(
    "hitl_applied_writes",
    sa.MetaData(),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
)


class ApplyFailed(AgentError):
    """The write could not be made (a statement matched no row); it was rolled back."""


def writer_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """A sync engine for the target whose transactions lock for writing from their start.

    SQLite: the driver's own transaction handling is switched off and every transaction begins
    with ``BEGIN IMMEDIATE``, so the rows read for the fingerprint check cannot change before the
    write (SQLAlchemy's documented recipe). Other dialects lock with ``FOR UPDATE``.
    """
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA busy_timeout = 10000")
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def ensure_markers(engine: sa.Engine) -> None:
    """Create ``hitl_applied_writes`` in the target if it is not there (safe to repeat)."""
    with engine.begin() as conn:
        MARKERS.create(conn, checkfirst=True)


@dataclass(frozen=True, slots=True)
class Applied:
    rows: int
    replayed: bool
    """True when the marker showed the write was already committed (a replay after a crash)."""


def _invalid(index: int, table: str | None, message: str) -> ProposalInvalid:
    return ProposalInvalid([Problem(index, table, None, "bad_shape", message)])


def with_edits(proposal: Proposal, edits: Sequence[Edit]) -> Proposal:
    """The proposal with each edited change's values replaced column by column."""
    if not edits:
        return proposal
    changes = list(proposal.changes)
    for edit in edits:
        if not 0 <= edit.index < len(changes):
            raise _invalid(
                edit.index,
                None,
                f"there is no change {edit.index} (the proposal has {len(changes)})",
            )
        change = changes[edit.index]
        if change.op == "delete":
            raise _invalid(edit.index, change.table, "a delete has no values to edit")
        changes[edit.index] = RowChange(
            op=change.op,
            table=change.table,
            key=change.key,
            values={**change.values, **edit.values},
        )
    return proposal.model_copy(update={"changes": changes})


def _write(conn: sa.Connection, catalogue: Catalogue, change: ValidatedChange) -> None:
    table = catalogue.core_table(change.table)
    info = catalogue[change.table]
    if change.op == "insert":
        conn.execute(table.insert().values(**change.row))
        return
    where = sa.and_(*(table.c[name] == change.key[name] for name in info.primary_key))
    if change.op == "update":
        result = conn.execute(table.update().where(where).values(**change.values))
    else:
        result = conn.execute(table.delete().where(where))
    if result.rowcount != 1:
        raise ApplyFailed(
            f"change {change.index}: the {change.op} of {change.table} matched "
            f"{result.rowcount} rows instead of 1; nothing was written"
        )


def apply_proposal(
    engine: sa.Engine,
    catalogue: Catalogue,
    proposal: Proposal,
    diffs: Sequence[Diff],
    *,
    run_id: str,
    step: str,
    max_rows: int,
    clock: Any = time.time,
) -> Applied | list[dict[str, Any]] | ProposalInvalid:
    """Apply *proposal* (edits already merged) in one transaction of *engine* (a `writer_engine`).

    Returns `Applied`, the conflicts (JSON) when a row changed since *diffs* were taken, or the
    `ProposalInvalid` that the locked re-validation raised. Nothing is written unless `Applied`.
    """
    with engine.begin() as conn:
        marker = conn.execute(
            sa.select(MARKERS.c.rows).where(MARKERS.c.run_id == run_id, MARKERS.c.step == step)
        ).first()
        if marker is not None:
            return Applied(rows=int(marker.rows), replayed=True)
        conflicts = find_conflicts(conn, catalogue, diffs, for_update=True)
        if conflicts:
            return [conflict.to_json() for conflict in conflicts]
        try:
            validated = validate(proposal, catalogue, conn, max_rows=max_rows)
        except ProposalInvalid as exc:
            return exc
        for change in validated.changes:
            _write(conn, catalogue, change)
        rows = len(validated.changes)
        conn.execute(
            MARKERS.insert().values(run_id=run_id, step=step, applied_at=clock(), rows=rows)
        )
    return Applied(rows=rows, replayed=False)


def outcome_of(
    result: Applied | list[dict[str, Any]] | ProposalInvalid,
    *,
    reviewer: str,
    comment: str | None,
    edited: bool,
) -> Outcome:
    """The run's outcome for what `apply_proposal` returned."""
    if isinstance(result, Applied):
        what = "with the reviewer's edits " if edited else ""
        return Outcome(
            "applied",
            reviewer,
            comment,
            f"applied {result.rows} row change(s) {what}after approval by {reviewer}",
            rows=result.rows,
        )
    if isinstance(result, ProposalInvalid):
        kind: OutcomeKind = "invalid_edit" if edited else "conflict"
        problem = str(result.problems[0]) if result.problems else "invalid"
        return Outcome(
            kind,
            reviewer,
            comment,
            f"nothing was written: the {'edited ' if edited else ''}proposal is no longer valid "
            f"({problem})",
            problems=tuple(p.to_json() for p in result.problems),
        )
    first = result[0]
    return Outcome(
        "conflict",
        reviewer,
        comment,
        f"nothing was written: {first['table']} {first['key']}: {first['message']}",
        conflicts=tuple(result),
    )
