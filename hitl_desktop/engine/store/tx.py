"""Transactions on the store: what a transaction body may do, for SQLite and PostgreSQL.

Transaction bodies are plain synchronous functions `fn(tx, *args)` written with SQLAlchemy
Core statements (executors.py runs them). On SQLite, statements are compiled by SQLAlchemy once
and executed on the raw `sqlite3` connection: SQLAlchemy's per-statement and per-transaction
bookkeeping costs more than an fsync there. On PostgreSQL the same bodies run on a SQLAlchemy
Connection through `AsyncConnection.run_sync`.
"""

from __future__ import annotations

import contextlib
import operator
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")
Row = Mapping[str, Any]


class Tx(Protocol):
    """What a transaction body may do."""

    dialect: str

    def execute(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> int:
        """Run a write; return the number of rows it matched."""

    def execute_many(self, stmt: Statement, rows: list[dict[str, Any]]) -> None: ...

    def all(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def one(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> Row | None: ...

    def returning(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a write with a RETURNING clause; return its rows (the write is complete)."""

    def data_version(self) -> int | None:
        """A counter that moves when another connection commits, where the dialect has one."""

    def others_attached(self, engine_id: str) -> bool:
        """Whether an engine other than *engine_id* is attached to the store (started and not
        signed off), so that something may read the event log. Asked in a write transaction."""

    def registry_changed(self) -> None:
        """This transaction registered or signed off engines: others_attached must look again."""

    def before_log(self) -> None:
        """Called before each append to the event log. Readers tail the log by id, so ids must
        follow commit order: where transactions can commit out of id order, appenders are
        serialised here until they commit."""

    def audit_head(self) -> tuple[int, str] | None:
        """The audit chain's last (id, hash) when known without reading it, else None."""

    def audit_appended(self, entry_id: int, digest: str) -> None:
        """This transaction appended entry *entry_id* with hash *digest* to the audit chain."""


Body = Callable[..., T]


class Prepared:
    """A module-level statement, compiled once for SQLite and reused by every transaction."""

    __slots__ = ("_sqlite", "stmt")

    def __init__(self, stmt: sa.Executable) -> None:
        self.stmt = stmt
        self._sqlite: _Compiled | None = None

    def sqlite(self) -> _Compiled:
        if self._sqlite is None:
            self._sqlite = _compile_sqlite(self.stmt, inline_constants=True)
        return self._sqlite


Statement = sa.Executable | Prepared
Binder = Callable[[Mapping[str, Any]], tuple[Any, ...]]
_Compiled = tuple[str, Binder]

_SQLITE = sqlite_dialect.dialect(paramstyle="qmark")


def _compile_sqlite(stmt: sa.Executable, inline_constants: bool = False) -> _Compiled:
    """SQL text, and a function turning the caller's params into its positional arguments
    (one C call: itemgetter). With *inline_constants* (module-level statements, whose values
    are the code's own), the statement's constants (a status it sets or tests, a NULL it
    writes) are written into the text: nothing to merge or bind per call. Values of
    statements built per call may come from users: those stay bound."""
    assert isinstance(stmt, sa.ClauseElement)
    compiled = stmt.compile(dialect=_SQLITE, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    names = list(compiled.positiontup or [])
    # Parameters the caller must supply (bindparam("name") without a value) have no default.
    required = {name for name, bind in compiled.binds.items() if bind.required}
    defaults = {k: v for k, v in compiled.params.items() if k not in required}
    parts = compiled.string.split("?")
    if not inline_constants or len(parts) != len(names) + 1:  # or a "?" in a literal
        return compiled.string, _binder(names, defaults)
    text, bound = parts[0], []
    for name, part in zip(names, parts[1:], strict=True):
        literal = _literal(defaults[name]) if name in defaults else None
        if literal is None:
            text += "?" + part
            bound.append(name)
        else:
            text += literal + part
    return text, _binder(bound, {k: v for k, v in defaults.items() if k in bound})


def _literal(value: Any) -> str | None:
    """*value* as SQLite literal text, for the types constants have; None: bind it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None


def _binder(names: list[str], defaults: dict[str, Any]) -> Binder:
    if not names:
        return lambda params: ()
    get = operator.itemgetter(*names)
    if len(names) == 1:
        if defaults:
            return lambda params: (get({**defaults, **params}),)
        return lambda params: (get(params),)
    if defaults:
        return lambda params: get({**defaults, **params})
    return get


_NO_PARAMS: Mapping[str, Any] = {}
_OTHER_ENGINES = "SELECT 1 FROM hitl_engines WHERE stopped_at IS NULL AND id != ? LIMIT 1"


class SqliteTx:
    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw
        self.cursor = raw.cursor()  # one cursor for every statement: none made per call
        self._attached: tuple[int | None, str, bool] | None = None  # (data_version, engine, answer)
        self.attached_in_tx: bool | None = None  # the answer within the current transaction
        self._version_in_tx: int | None = None
        # The audit chain's head as of our last commit, (data_version, id, hash), and as this
        # transaction left it: while data_version has not moved, nobody else appended.
        self._head: tuple[int, int, str] | None = None
        self._head_in_tx: tuple[int, str] | None = None

    @staticmethod
    def _bind(stmt: Statement, params: Mapping[str, Any] | None) -> tuple[str, tuple[Any, ...]]:
        # Dynamic statements (filters, IN lists) are compiled per call: nothing to cache.
        sql, bind = stmt.sqlite() if isinstance(stmt, Prepared) else _compile_sqlite(stmt)
        return sql, bind(params or _NO_PARAMS)

    def execute(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> int:
        sql, args = self._bind(stmt, params)
        return self.cursor.execute(sql, args).rowcount

    def execute_many(self, stmt: Statement, rows: list[dict[str, Any]]) -> None:
        if rows:
            sql, bind = stmt.sqlite() if isinstance(stmt, Prepared) else _compile_sqlite(stmt)
            self.cursor.executemany(sql, [bind(row) for row in rows])

    def all(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        sql, args = self._bind(stmt, params)
        return self.cursor.execute(sql, args).fetchall()

    def one(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> Row | None:
        # fetchall: the statement runs to its end, so nothing is left pending on the cursor.
        sql, args = self._bind(stmt, params)
        rows = self.cursor.execute(sql, args).fetchall()
        return rows[0] if rows else None

    def returning(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        sql, args = self._bind(stmt, params)
        return self.cursor.execute(sql, args).fetchall()

    def data_version(self) -> int | None:
        """Changes whenever another connection commits; never for our own commits."""
        return int(self.cursor.execute("PRAGMA data_version").fetchall()[0][0])

    def _version(self) -> int:
        # In a write transaction (BEGIN IMMEDIATE) no other connection commits: read it once.
        if self._version_in_tx is None:
            self._version_in_tx = int(self.cursor.execute("PRAGMA data_version").fetchall()[0][0])
        return self._version_in_tx

    # The executor tells the transaction's boundaries, so that what it learnt inside one is kept
    # only once it commits.
    def begun(self) -> None:
        self.attached_in_tx = self._version_in_tx = self._head_in_tx = None

    def savepoint(self) -> tuple[int, str] | None:
        return self._head_in_tx

    def rolled_back_to(self, mark: tuple[int, str] | None) -> None:
        self._head_in_tx = mark

    def committed(self) -> None:
        if self._head_in_tx is not None and self._version_in_tx is not None:
            self._head = (self._version_in_tx, *self._head_in_tx)
        self.begun()

    def audit_head(self) -> tuple[int, str] | None:
        if self._head_in_tx is not None:
            return self._head_in_tx
        known = self._head
        if known is not None and known[0] == self._version():
            return known[1], known[2]
        return None

    def audit_appended(self, entry_id: int, digest: str) -> None:
        self._version()  # the version the head is known at, read before the commit
        self._head_in_tx = (entry_id, digest)

    def others_attached(self, engine_id: str) -> bool:
        # Inside a write transaction no other connection can commit, so the answer holds until
        # it ends; and data_version moves only when another connection committed: until it
        # moves, the registry is as it was at the last look.
        if self.attached_in_tx is not None:
            return self.attached_in_tx
        version = self._version()
        known = self._attached
        if known is not None and known[0] == version and known[1] == engine_id:
            found = known[2]
        else:
            found = bool(self.cursor.execute(_OTHER_ENGINES, (engine_id,)).fetchall())
            self._attached = (version, engine_id, found)
        self.attached_in_tx = found
        return found

    def registry_changed(self) -> None:
        self._attached = self.attached_in_tx = None  # our own commits do not move data_version

    def before_log(self) -> None:
        pass  # BEGIN IMMEDIATE: one writer at a time, so ids already follow commit order


class SaTx:
    """The same interface over a SQLAlchemy Connection (PostgreSQL, through run_sync)."""

    @staticmethod
    def _stmt(stmt: Statement) -> sa.Executable:
        return stmt.stmt if isinstance(stmt, Prepared) else stmt

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect.name
        self._log_locked = False

    def execute(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> int:
        result = self._conn.execute(self._stmt(stmt), dict(params or {}))
        return int(result.rowcount)

    def execute_many(self, stmt: Statement, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._conn.execute(self._stmt(stmt), rows)

    def all(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        rows = self._conn.execute(self._stmt(stmt), dict(params or {}))
        return [dict(r._mapping) for r in rows]

    def one(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> Row | None:
        row = self._conn.execute(self._stmt(stmt), dict(params or {})).first()
        return None if row is None else dict(row._mapping)

    def returning(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        rows = self._conn.execute(self._stmt(stmt), dict(params or {}))
        return [dict(r._mapping) for r in rows]

    def data_version(self) -> int | None:
        return None

    def audit_head(self) -> tuple[int, str] | None:
        return None  # a trigger chains the entries on the server

    def audit_appended(self, entry_id: int, digest: str) -> None:
        pass

    def others_attached(self, engine_id: str) -> bool:
        # No cheap, race-free way to know (READ COMMITTED): always keep the log.
        return True

    def registry_changed(self) -> None:
        pass

    def before_log(self) -> None:
        # READ COMMITTED writers take ids from a sequence and may commit in another order, so a
        # reader tailing by id would skip a late commit: hold a lock from the first append to
        # commit, so ids are taken in commit order; the notification tells listeners to look.
        if not self._log_locked:
            self._conn.execute(_LOCK_AND_NOTIFY)
            self._log_locked = True


EVENT_LOG_LOCK = 727274002
"""The advisory lock key serialising appends to the event log on PostgreSQL."""
EVENT_CHANNEL = "hitl_events"
"""The LISTEN/NOTIFY channel: a notification means "the event log grew, look"."""
_LOCK_AND_NOTIFY = sa.text(
    f"SELECT pg_advisory_xact_lock({EVENT_LOG_LOCK}), pg_notify('{EVENT_CHANNEL}', '')"
)


@contextlib.contextmanager
def read_only_tx(path: str) -> Iterator[Tx]:
    """Reads on the SQLite file at *path* through a connection that sets no pragma, so that
    nothing about the file changes (configure_sqlite switches it to WAL)."""
    raw = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        raw.row_factory = sqlite3.Row
        raw.execute("BEGIN")  # one snapshot for every read
        try:
            yield SqliteTx(raw)
        finally:
            raw.execute("COMMIT")
    finally:
        raw.close()


def configure_sqlite(raw: sqlite3.Connection, synchronous: str) -> None:
    """The one place SQLite's pragmas are set, for the store thread and for migrations."""
    raw.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves
    raw.execute("PRAGMA busy_timeout=10000")
    # Switching a new file to WAL can fail at once with "locked" while another process creates
    # the same store, without consulting the busy handler: retry it for a bounded while.
    for attempt in range(200):
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 199:
                raise
            time.sleep(0.01)
    raw.execute(f"PRAGMA synchronous={synchronous}")
    raw.execute("PRAGMA busy_timeout=10000")
    raw.execute("PRAGMA foreign_keys=ON")
