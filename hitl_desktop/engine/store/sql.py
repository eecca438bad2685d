"""Running the store's transactions: one code path for SQLite and PostgreSQL.

Transaction bodies are plain synchronous functions `fn(tx, *args)` written with SQLAlchemy
Core statements. Where they run depends on the dialect:

* SQLite: on one dedicated store thread that owns one `sqlite3` connection. Statements are
  compiled by SQLAlchemy once and executed on the raw connection: SQLAlchemy's per-statement
  and per-transaction bookkeeping costs more than an fsync here. Writes
  queued while a commit is in flight are grouped into one `BEGIN IMMEDIATE` transaction, each
  in its own savepoint, so concurrent runs share fsyncs without sharing failures.
* PostgreSQL: on an asyncpg engine through `AsyncConnection.run_sync`, so the same bodies run
  without a thread and without blocking the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
import os
import queue
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
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


class _SqliteTx:
    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw
        self._cursor = raw.cursor()  # one cursor for every statement: none made per call
        self._attached: tuple[int | None, str, bool] | None = None  # (data_version, engine, answer)
        self.attached_in_tx: bool | None = None  # the answer within the current transaction

    @staticmethod
    def _bind(stmt: Statement, params: Mapping[str, Any] | None) -> tuple[str, tuple[Any, ...]]:
        # Dynamic statements (filters, IN lists) are compiled per call: nothing to cache.
        sql, bind = stmt.sqlite() if isinstance(stmt, Prepared) else _compile_sqlite(stmt)
        return sql, bind(params or _NO_PARAMS)

    def execute(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> int:
        sql, args = self._bind(stmt, params)
        return self._cursor.execute(sql, args).rowcount

    def execute_many(self, stmt: Statement, rows: list[dict[str, Any]]) -> None:
        if rows:
            sql, bind = stmt.sqlite() if isinstance(stmt, Prepared) else _compile_sqlite(stmt)
            self._cursor.executemany(sql, [bind(row) for row in rows])

    def all(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        sql, args = self._bind(stmt, params)
        return self._cursor.execute(sql, args).fetchall()

    def one(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> Row | None:
        # fetchall: the statement runs to its end, so nothing is left pending on the cursor.
        sql, args = self._bind(stmt, params)
        rows = self._cursor.execute(sql, args).fetchall()
        return rows[0] if rows else None

    def returning(self, stmt: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        sql, args = self._bind(stmt, params)
        return self._cursor.execute(sql, args).fetchall()

    def data_version(self) -> int | None:
        """Changes whenever another connection commits; never for our own commits."""
        return int(self._cursor.execute("PRAGMA data_version").fetchall()[0][0])

    def others_attached(self, engine_id: str) -> bool:
        # Inside a write transaction no other connection can commit, so the answer holds until
        # it ends; and data_version moves only when another connection committed: until it
        # moves, the registry is as it was at the last look.
        if self.attached_in_tx is not None:
            return self.attached_in_tx
        version = self.data_version()
        known = self._attached
        if known is not None and known[0] == version and known[1] == engine_id:
            found = known[2]
        else:
            found = bool(self._cursor.execute(_OTHER_ENGINES, (engine_id,)).fetchall())
            self._attached = (version, engine_id, found)
        self.attached_in_tx = found
        return found

    def registry_changed(self) -> None:
        self._attached = self.attached_in_tx = None  # our own commits do not move data_version


class _SaTx:
    """The same interface over a SQLAlchemy Connection (PostgreSQL, through run_sync)."""

    @staticmethod
    def _stmt(stmt: Statement) -> sa.Executable:
        return stmt.stmt if isinstance(stmt, Prepared) else stmt

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect.name

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

    def others_attached(self, engine_id: str) -> bool:
        # No cheap, race-free way to know (READ COMMITTED): always keep the log.
        return True

    def registry_changed(self) -> None:
        pass


@contextlib.contextmanager
def read_only_tx(path: str) -> Iterator[Tx]:
    """Reads on the SQLite file at *path* through a connection that sets no pragma, so that
    nothing about the file changes (configure_sqlite switches it to WAL)."""
    raw = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        raw.row_factory = sqlite3.Row
        raw.execute("BEGIN")  # one snapshot for every read
        try:
            yield _SqliteTx(raw)
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


Then = Callable[[Any], None] | None
"""Run in the event loop with a write's result as soon as it is committed, before anything
awaiting the write resumes, and also when the caller stopped waiting: post-commit duties
(events, starting or resuming runs) follow the commit, not the caller."""


class Executor(Protocol):
    dialect: str

    def write(self, fn: Body[T], *args: Any, then: Then = None) -> Awaitable[T]:
        """Run *fn* in a write transaction; awaiting the result waits for its commit."""

    def read(self, fn: Body[T], *args: Any) -> Awaitable[T]: ...

    async def close(self) -> None: ...


_STOP = object()


Done = tuple[asyncio.Future[Any], bool, Any, Then]
"""A finished transaction on its way back to the loop: future, ok, value or error, hook."""


class _Bell:
    """How the store thread hands finished transactions back to one event loop: a signal on a
    file descriptor the loop watches, one read, then every finished future in the queue is
    resolved in that callback. asyncio's own call_soon_threadsafe costs the loop a callback
    object, two reads of its self-pipe and an exception each time; here a wake-up is one write
    and one read. On Linux the descriptor is an eventfd, whose write and read are cheaper
    system calls than a socket's send and recv; elsewhere a socket pair. Loops that cannot
    watch a descriptor (Windows' proactor) get call_soon_threadsafe."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._done: deque[Done] = deque()
        self._signal, self._clear, self._fileno, self._close = _doorbell()
        try:
            loop.add_reader(self._fileno, self._ring)
        except NotImplementedError:
            self._close()
            self.watched = False
        else:
            self.watched = True

    def deliver(self, done: Sequence[Done]) -> None:
        """From the store thread."""
        if not self.watched:
            # RuntimeError: the loop closed while we worked; nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_resolve, done)
            return
        self._done.extend(done)
        # try/except rather than contextlib.suppress: a context manager per wake-up costs more.
        try:  # noqa: SIM105
            self._signal()
        except OSError:  # full: a signal is already waiting
            pass

    def _ring(self) -> None:
        # Read first, then drain: whatever is queued after the read rings again.
        try:  # noqa: SIM105
            self._clear()
        except BlockingIOError:
            pass
        done = self._done
        while done:
            _resolve_one(*done.popleft())

    def close(self) -> None:
        """After the store thread has stopped: nothing signals any more."""
        if self.watched:
            self.watched = False
            if not self.loop.is_closed():
                self.loop.remove_reader(self._fileno)
            self._close()


def _doorbell() -> tuple[Callable[[], Any], Callable[[], Any], int, Callable[[], None]]:
    """(signal, clear, descriptor to watch, close) of a non-blocking wake-up channel."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return (
            functools.partial(os.eventfd_write, fd, 1),
            functools.partial(os.eventfd_read, fd),
            fd,
            functools.partial(os.close, fd),
        )
    rx, tx = socket.socketpair()
    rx.setblocking(False)
    tx.setblocking(False)

    def close() -> None:
        rx.close()
        tx.close()

    return functools.partial(tx.send, b"\0"), functools.partial(rx.recv, 4096), rx.fileno(), close


class SqliteExecutor:
    """One thread, one connection; writes that queue up meanwhile share a transaction."""

    dialect = "sqlite"
    max_group = 64

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._bells: dict[asyncio.AbstractEventLoop, _Bell] = {}
        self._thread = threading.Thread(target=self._serve, name="hitl-store", daemon=True)
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error

    # Plain functions returning the future: the work is queued at the call, so a caller can
    # do its own work while the store thread runs the transaction, then await the result.
    def write(self, fn: Body[T], *args: Any, then: Then = None) -> asyncio.Future[T]:
        return self._submit(True, fn, args, then)

    def read(self, fn: Body[T], *args: Any) -> asyncio.Future[T]:
        return self._submit(False, fn, args, None)

    def _submit(
        self, write: bool, fn: Body[T], args: tuple[Any, ...], then: Then
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        bell = self._bells.get(loop)
        if bell is None:
            bell = self._bells[loop] = _Bell(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((write, fn, args, future, bell, then))
        return future

    async def close(self) -> None:
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        for bell in self._bells.values():
            bell.close()
        self._bells.clear()

    def _serve(self) -> None:
        try:
            raw = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            raw.row_factory = sqlite3.Row
            configure_sqlite(raw, self._synchronous)
        except BaseException as exc:  # reported to the constructor
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        tx = _SqliteTx(raw)
        pending: list[Any] = []
        try:
            while True:
                item = pending.pop(0) if pending else self._queue.get()
                if item is _STOP:
                    return
                if not item[0]:
                    self._deliver([self._run_read(raw, tx, item)])
                    continue
                group = [item]
                waiting = self._queue  # empty() first: an exception per write costs more
                while len(group) < self.max_group and not waiting.empty():
                    nxt = waiting.get_nowait()  # only this thread takes from the queue
                    if nxt is _STOP or not nxt[0]:
                        pending.append(nxt)
                        break
                    group.append(nxt)
                self._deliver(self._run_writes(raw, tx, group))
        finally:
            raw.close()

    @staticmethod
    def _run_read(raw: sqlite3.Connection, tx: _SqliteTx, item: Any) -> tuple[Any, bool, Any]:
        fn, args = item[1], item[2]
        execute = tx._cursor.execute
        try:
            execute("BEGIN")  # a snapshot: several SELECTs see one state
            try:
                return (item, True, fn(tx, *args))
            finally:
                execute("COMMIT")
        except BaseException as exc:
            return (item, False, exc)

    @staticmethod
    def _run_writes(raw: sqlite3.Connection, tx: _SqliteTx, group: list[Any]) -> list[Any]:
        results: list[Any] = []
        shared = len(group) > 1
        execute = tx._cursor.execute
        try:
            execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            return [(item, False, exc) for item in group]
        tx.attached_in_tx = None
        try:
            for item in group:
                fn, args = item[1], item[2]
                if shared:
                    execute("SAVEPOINT hitl_item")
                try:
                    value = fn(tx, *args)
                except BaseException as exc:
                    if shared:
                        execute("ROLLBACK TO hitl_item")
                        execute("RELEASE hitl_item")
                    else:
                        execute("ROLLBACK")
                    results.append((item, False, exc))
                    continue
                if shared:
                    execute("RELEASE hitl_item")
                results.append((item, True, value))
            if raw.in_transaction:
                execute("COMMIT")
        except BaseException as exc:
            if raw.in_transaction:
                execute("ROLLBACK")
            return [(item, False, exc) for item in group]
        return results

    @staticmethod
    def _deliver(results: list[tuple[Any, bool, Any]]) -> None:
        if len(results) == 1:
            item, ok, value = results[0]
            item[4].deliver(((item[3], ok, value, item[5]),))
            return
        by_bell: dict[_Bell, list[Done]] = {}
        for item, ok, value in results:
            by_bell.setdefault(item[4], []).append((item[3], ok, value, item[5]))
        for bell, done in by_bell.items():
            bell.deliver(done)


def _resolve_one(future: asyncio.Future[Any], ok: bool, value: Any, then: Then) -> None:
    # The hook runs even when the caller stopped waiting (cancelled): what it does follows
    # from the commit, which happened all the same.
    if ok and then is not None:
        try:
            then(value)
        except BaseException as exc:  # a bug in the hook: the caller hears of it
            if not future.done():
                future.set_exception(exc)
            return
    if future.done():  # cancelled: the caller gave up waiting
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _resolve(done: Sequence[Done]) -> None:
    for future, ok, value, then in done:
        _resolve_one(future, ok, value, then)


class AsyncSaExecutor:
    """PostgreSQL (asyncpg) and any other async SQLAlchemy dialect."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        self._engine = create_async_engine(url, pool_size=8, max_overflow=0)
        # Queue here rather than in the pool, whose checkout times out under a burst of runs.
        self._slots = asyncio.Semaphore(8)
        self._writing: set[asyncio.Task[Any]] = set()
        self.dialect = self._engine.dialect.name

    def write(self, fn: Body[T], *args: Any, then: Then = None) -> asyncio.Future[T]:
        # Each write runs in a task of its own, shielded: a caller that stops waiting does not
        # cut the transaction off halfway, and *then* follows its commit, as on SQLite, whose
        # store thread finishes whatever was queued.
        task = asyncio.ensure_future(self._write(fn, args, then))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        return asyncio.shield(task)

    async def _write(self, fn: Body[T], args: tuple[Any, ...], then: Then) -> T:
        result = await self._transaction(fn, args)
        if then is not None:
            then(result)
        return result

    async def read(self, fn: Body[T], *args: Any) -> T:
        return await self._transaction(fn, args)

    async def _transaction(self, fn: Body[T], args: tuple[Any, ...]) -> T:
        async with self._slots, self._engine.begin() as conn:
            return await conn.run_sync(lambda c: fn(_SaTx(c), *args))

    async def run_sync(self, fn: Callable[[sa.Connection], Any]) -> None:
        """Run *fn* on a plain SQLAlchemy connection in one transaction (migrations)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(fn)

    async def close(self) -> None:
        await asyncio.gather(*self._writing, return_exceptions=True)
        await self._engine.dispose()


async def write_retrying_conflicts(executor: Executor, fn: Body[T], *args: Any) -> T:
    """A write that checks an idempotency key, then inserts it. Two processes can both find
    the key free (PostgreSQL's READ COMMITTED); the loser hits the unique index, and its retry
    finds the winner's row. SQLite's BEGIN IMMEDIATE serialises them, so it never retries."""
    for attempt in range(3):
        try:
            return await executor.write(fn, *args)
        except (sqlite3.IntegrityError, sa.exc.IntegrityError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
