"""Executors run transaction bodies (tx.py): one code path for SQLite and PostgreSQL.

* SQLite: on one dedicated store thread that owns one `sqlite3` connection. Writes queued while
  a commit is in flight are grouped into one `BEGIN IMMEDIATE` transaction, each in its own
  savepoint, so concurrent runs share fsyncs without sharing failures.
* PostgreSQL: on an asyncpg engine through `AsyncConnection.run_sync`, so the same bodies run
  without a thread and without blocking the loop.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from .bell import Bell, Done, Then
from .tx import Body, SaTx, SqliteTx, configure_sqlite

T = TypeVar("T")


class Executor(Protocol):
    dialect: str

    def write(self, fn: Body[T], *args: Any, then: Then = None) -> Awaitable[T]:
        """Run *fn* in a write transaction; awaiting the result waits for its commit."""

    def read(self, fn: Body[T], *args: Any) -> Awaitable[T]: ...

    async def close(self) -> None: ...


class Job:
    """A transaction body queued for the store thread, and where its result goes."""

    __slots__ = ("args", "bell", "fn", "future", "then", "write")

    def __init__(
        self,
        write: bool,
        fn: Body[Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
        bell: Bell,
        then: Then,
    ) -> None:
        self.write = write
        self.fn = fn
        self.args = args
        self.future = future
        self.bell = bell
        self.then = then

    def done(self, ok: bool, value: Any) -> Done:
        return (self.future, ok, value, self.then)


_STOP = object()
Finished = tuple[Job, bool, Any]
"""A job, whether its body returned, and its value or exception."""


class SqliteExecutor:
    """One thread, one connection; writes that queue up meanwhile share a transaction."""

    dialect = "sqlite"
    max_group = 64

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._bells: dict[asyncio.AbstractEventLoop, Bell] = {}
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
            bell = self._bells[loop] = Bell(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Job(write, fn, args, future, bell, then))
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
        tx = SqliteTx(raw)
        pending: list[Any] = []
        try:
            while True:
                item = pending.pop(0) if pending else self._queue.get()
                if item is _STOP:
                    return
                if not item.write:
                    self._deliver([self._run_read(raw, tx, item)])
                    continue
                group = [item]
                waiting = self._queue  # empty() first: an exception per write costs more
                while len(group) < self.max_group and not waiting.empty():
                    nxt = waiting.get_nowait()  # only this thread takes from the queue
                    if nxt is _STOP or not nxt.write:
                        pending.append(nxt)
                        break
                    group.append(nxt)
                self._deliver(self._run_writes(raw, tx, group))
        finally:
            raw.close()

    @staticmethod
    def _run_read(raw: sqlite3.Connection, tx: SqliteTx, item: Job) -> Finished:
        execute = tx.cursor.execute
        try:
            execute("BEGIN")  # a snapshot: several SELECTs see one state
            try:
                return (item, True, item.fn(tx, *item.args))
            finally:
                execute("COMMIT")
        except BaseException as exc:
            return (item, False, exc)

    @staticmethod
    def _run_writes(raw: sqlite3.Connection, tx: SqliteTx, group: list[Job]) -> list[Finished]:
        results: list[Finished] = []
        shared = len(group) > 1
        execute = tx.cursor.execute
        try:
            execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            return [(item, False, exc) for item in group]
        tx.begun()
        try:
            for item in group:
                if shared:
                    execute("SAVEPOINT hitl_item")
                    mark = tx.savepoint()
                try:
                    value = item.fn(tx, *item.args)
                except BaseException as exc:
                    if shared:
                        execute("ROLLBACK TO hitl_item")
                        execute("RELEASE hitl_item")
                        tx.rolled_back_to(mark)
                    else:
                        execute("ROLLBACK")
                        tx.begun()
                    results.append((item, False, exc))
                    continue
                if shared:
                    execute("RELEASE hitl_item")
                results.append((item, True, value))
            if raw.in_transaction:
                execute("COMMIT")
                tx.committed()
        except BaseException as exc:
            if raw.in_transaction:
                execute("ROLLBACK")
            tx.begun()
            return [(item, False, exc) for item in group]
        return results

    @staticmethod
    def _deliver(results: list[Finished]) -> None:
        if len(results) == 1:
            item, ok, value = results[0]
            item.bell.deliver((item.done(ok, value),))
            return
        by_bell: dict[Bell, list[Done]] = {}
        for item, ok, value in results:
            by_bell.setdefault(item.bell, []).append(item.done(ok, value))
        for bell, done in by_bell.items():
            bell.deliver(done)


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
            return await conn.run_sync(lambda c: fn(SaTx(c), *args))

    async def run_sync(self, fn: Callable[[sa.Connection], Any]) -> None:
        """Run *fn* on a plain SQLAlchemy connection in one transaction (migrations)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(fn)

    async def close(self) -> None:
        await asyncio.gather(*self._writing, return_exceptions=True)
        await self._engine.dispose()
