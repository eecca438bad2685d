"""The write: one locked transaction on the target that applies an approved proposal exactly once.

In that transaction, in order:

1. the marker table ``hitl_applied_writes`` is created if it is missing (proposing never writes
   to the target, so it appears with the first approved write) and read: a row for (run, step)
   means this very write was committed before — the process died before the engine recorded the
   step — so nothing is written again;
2. the rows are locked (``BEGIN IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL) and
   compared with the fingerprints taken for the review, and every read the proposal relied on is
   run again (`read_check`): a row or a read that changed means a conflict, and nothing is
   written;
3. the proposal (with the reviewer's edits) is validated again against the locked rows, and the
   parent rows of its inserts are compared with those the review saw;
4. the changes are written with bound parameters (names only from the catalogue), each written
   row is read back, and the marker row is inserted with the rows before and after the write
   (`images.RowImage`, what a revert is built from). Commit.

On PostgreSQL the transaction is SERIALIZABLE, so a row another transaction inserts into a read's
range (a second refund) fails one of the two instead of letting both write. A lock timeout, a
deadlock or a serialization failure runs the whole transaction again (`retry`), for a bounded
time. A kill at any point leaves either nothing or everything plus the marker; a replay that
finds the marker returns the images recorded in it.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
import sqlalchemy as sa

from ._rows import key_of
from .catalogue import Catalogue
from .coerce import json_row
from .diff import Diff, find_conflicts, read_rows
from .errors import AgentError, Problem, ProposalInvalid
from .images import RowImage, images_from_json
from .proposal import Proposal, RowChange
from .read_check import changed_parents, changed_reads
from .reads import Read
from .retry import DEFAULT_RETRY_FOR, Transient, retrying, transient_cause
from .review import Edit, Outcome, OutcomeKind
from .validation import ValidatedChange, validate

MARKERS = sa.Table(
    "hitl_applied_writes",
    sa.MetaData(),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("images", sa.Text, nullable=True),
)
IMAGES = "images"
"""The marker's column of row images (JSON); tables made before it may lack it."""


class ApplyFailed(AgentError):
    """The write could not be made (a statement matched no row); it was rolled back."""


def writer_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """A sync engine for the target whose transactions lock for writing from their start.

    SQLite: the driver's own transaction handling is switched off and every transaction begins
    with ``BEGIN IMMEDIATE``, so the rows read for the fingerprint check cannot change before the
    write (SQLAlchemy's documented recipe). PostgreSQL: transactions are SERIALIZABLE (rows read
    by a filter cannot gain a phantom row unnoticed), and rows are locked with ``FOR UPDATE``.
    """
    if sa.make_url(url).get_backend_name() in ("postgresql", "postgres"):
        kwargs.setdefault("isolation_level", "SERIALIZABLE")
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
    """Create ``hitl_applied_writes`` in the target if it is not there (safe to repeat). The apply
    step does this itself; this is for an administrator who pre-creates the table so that the
    write account needs no CREATE privilege."""
    with engine.begin() as conn:
        MARKERS.create(conn, checkfirst=True)


def _markers_in(conn: sa.Connection) -> bool:
    """Create the marker table inside the apply transaction when it is missing; True when it
    has the images column."""
    inspector = sa.inspect(conn)
    if inspector.has_table(MARKERS.name):
        return IMAGES in {column["name"] for column in inspector.get_columns(MARKERS.name)}
    try:
        MARKERS.create(conn)
    except sa.exc.DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None)
        if state in ("42P07", "23505"):
            # Another apply created it meanwhile (PostgreSQL); the next attempt finds it.
            raise Transient("another apply created hitl_applied_writes at the same time") from exc
        if transient_cause(exc) is not None:
            raise
        raise ApplyFailed(
            f"cannot create the marker table hitl_applied_writes in the target ({exc.orig}); "
            "grant the write account CREATE on the schema, or create the table beforehand; "
            "nothing was written"
        ) from exc
    return True


_upgraded: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _upgrade_markers(conn: sa.Connection) -> None:
    """Add the images column to a marker table made before it, in a transaction of its own (the
    ALTER locks the table: not for the length of an apply), once per writer engine. An account
    that may not alter it still writes: the images are then only in the run's recorded outcome,
    which a replay after a crash between the commit and that record cannot restore (such a run
    is not revertible)."""
    if conn.engine in _upgraded:
        return
    try:
        with conn.begin():
            inspector = sa.inspect(conn)
            if inspector.has_table(MARKERS.name) and IMAGES not in {
                column["name"] for column in inspector.get_columns(MARKERS.name)
            }:
                conn.exec_driver_sql(f"ALTER TABLE {MARKERS.name} ADD COLUMN {IMAGES} TEXT")
    except sa.exc.DBAPIError as exc:
        if transient_cause(exc) is not None:
            raise
    _upgraded.add(conn.engine)


@dataclass(frozen=True, slots=True)
class Applied:
    rows: int
    replayed: bool
    """True when the marker showed the write was already committed (a replay after a crash)."""
    images: tuple[RowImage, ...] | None = None
    """Each written row before and after; None when they could not be recorded."""


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
        try:
            changes[edit.index] = RowChange(
                op=change.op,
                table=change.table,
                key=change.key,
                values={**change.values, **edit.values},
                part=change.part,
            )
        except pydantic.ValidationError as exc:
            raise ProposalInvalid(_value_problems(edit.index, change.table, exc)) from None
    return proposal.model_copy(update={"changes": changes})


def _value_problems(index: int, table: str, exc: pydantic.ValidationError) -> list[Problem]:
    """One problem per edited column whose value is not a JSON scalar."""
    problems: dict[str | None, Problem] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        column = str(loc[1]) if len(loc) > 1 and loc[0] == "values" else None
        if column not in problems:
            problems[column] = Problem(
                index,
                table,
                column,
                "bad_value",
                "an edited value must be a string, a number, true, false or null, "
                f"not {type(error['input']).__name__}",
            )
    return list(problems.values())


def _write(conn: sa.Connection, catalogue: Catalogue, change: ValidatedChange) -> dict[str, Any]:
    """Write *change*; return the row's primary key (for an insert, with a generated part)."""
    table = catalogue.core_table(change.table)
    info = catalogue[change.table]
    if change.op == "insert":
        inserted = conn.execute(table.insert().values(**change.row))
        if not info.primary_key:
            return {}
        generated = dict(
            zip(table.primary_key.columns.keys(), inserted.inserted_primary_key or (), strict=False)
        )
        return {name: change.row.get(name, generated.get(name)) for name in info.primary_key}
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
    return dict(change.key)


def _images(
    conn: sa.Connection,
    catalogue: Catalogue,
    diffs: Sequence[Diff],
    written: Sequence[tuple[ValidatedChange, dict[str, Any]]],
) -> tuple[RowImage, ...]:
    """The rows as they were (the review's, which the locked rows matched) and as they are
    now, read back in the writing transaction."""
    before = {diff.index: diff.before for diff in diffs}
    images = []
    for change, key in written:
        info = catalogue[change.table]
        after = None
        if change.op != "delete":
            if key and all(value is not None for value in key.values()):
                rows = read_rows(conn, catalogue, change.table, [key_of(key, info.primary_key)])
                found = next(iter(rows.values()), None)
                after = None if found is None else json_row(found)
            else:
                after = json_row(change.row)
        images.append(
            RowImage(
                index=change.index,
                op=change.op,
                table=change.table,
                key=json_row(key),
                before=None if change.op == "insert" else before.get(change.index),
                after=after,
                hidden=len(catalogue.core_table(change.table).c) > len(info.columns),
            )
        )
    return tuple(images)


Result = Applied | list[dict[str, Any]] | ProposalInvalid


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
    reads: Sequence[Read] = (),
    retry_for: float = DEFAULT_RETRY_FOR,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Result:
    """Apply *proposal* (edits already merged) in one transaction of *engine* (a `writer_engine`).

    Returns `Applied`; the conflicts (JSON) when a row changed since *diffs* were taken or one of
    *reads* (the review's read set) returns other rows now; or the `ProposalInvalid` that the
    locked re-validation raised. Nothing is written unless `Applied`. While the target is locked
    the transaction is tried again for *retry_for* seconds, then `retry.TargetBusy` is raised.
    """

    def attempt(lock_wait: float) -> Result:
        with engine.connect() as conn:
            _wait_for_locks(conn, lock_wait)
            _upgrade_markers(conn)
            with conn.begin() as transaction:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(
                        f"SET LOCAL lock_timeout = {max(1, int(lock_wait * 1000))}"
                    )
                result = _apply_locked(
                    conn, catalogue, proposal, diffs, reads, run_id, step, max_rows, clock
                )
                if not isinstance(result, Applied) or result.replayed:
                    transaction.rollback()  # nothing to keep, not even a new marker table
            return result

    return retrying(attempt, retry_for=retry_for, sleep=sleep, monotonic=monotonic)


def _wait_for_locks(conn: sa.Connection, seconds: float) -> None:
    """How long SQLite waits for another writer before it reports the database locked; set on
    the driver's connection, before the transaction begins."""
    if conn.dialect.name == "sqlite":
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")


def _apply_locked(
    conn: sa.Connection,
    catalogue: Catalogue,
    proposal: Proposal,
    diffs: Sequence[Diff],
    reads: Sequence[Read],
    run_id: str,
    step: str,
    max_rows: int,
    clock: Any,
) -> Result:
    with_images = _markers_in(conn)
    columns = [MARKERS.c.rows, *([MARKERS.c.images] if with_images else [])]
    found = conn.execute(
        sa.select(*columns).where(MARKERS.c.run_id == run_id, MARKERS.c.step == step)
    ).first()
    if found is not None:
        recorded = found._mapping.get(IMAGES)
        images = None if recorded is None else images_from_json(json.loads(recorded))
        return Applied(rows=int(found.rows), replayed=True, images=images)
    conflicts = [c.to_json() for c in find_conflicts(conn, catalogue, diffs, for_update=True)]
    conflicts += [c.to_json() for c in changed_reads(conn, catalogue, reads)]
    if conflicts:
        return conflicts
    try:
        validated = validate(proposal, catalogue, conn, max_rows=max_rows)
    except ProposalInvalid as exc:
        return exc
    parents = changed_parents(conn, validated, reads)
    if parents:
        return [conflict.to_json() for conflict in parents]
    written = [(change, _write(conn, catalogue, change)) for change in validated.changes]
    images = _images(conn, catalogue, diffs, written)
    rows = len(validated.changes)
    marker: dict[str, Any] = {"run_id": run_id, "step": step, "applied_at": clock(), "rows": rows}
    if with_images:
        marker[IMAGES] = json.dumps([image.to_json() for image in images], separators=(",", ":"))
    conn.execute(MARKERS.insert().values(**marker))
    return Applied(rows=rows, replayed=False, images=images)


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
            written=None if result.images is None else tuple(i.to_json() for i in result.images),
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
    if "read" in first:
        what = f"the proposal relied on {first['read']}: {first['message']}"
    else:
        what = f"{first['table']} {first['key']}: {first['message']}"
    return Outcome(
        "conflict", reviewer, comment, f"nothing was written: {what}", conflicts=tuple(result)
    )
