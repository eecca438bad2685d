"""The SQLite store remembers the audit chain's head between its own transactions: an entry
appended by another connection, or rolled back with its transaction or its savepoint, must
never be chained on."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.engine import Engine
from hitl_desktop.engine.store import audit
from hitl_desktop.engine.store.executors import SqliteExecutor
from hitl_desktop.engine.store.tx import Tx


class Refused(Exception):
    pass


def _append(tx: Tx, kind: str) -> None:
    audit.append(tx, kind, None, None, None, "tester", 1_700_000_000.0)


def _append_then_fail(tx: Tx, kind: str) -> None:
    _append(tx, kind)
    raise Refused(kind)


def _chain(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as raw:
        return list(raw.execute("SELECT id, kind FROM hitl_audit ORDER BY id"))


@pytest.fixture
async def store(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    async with Engine(f"sqlite:///{path}"):  # creates the schema
        pass
    return path


async def _verify(path: Path) -> Any:
    async with Engine(f"sqlite:///{path}") as engine:
        return (await engine.verify_audit()).broken


async def test_an_entry_from_another_connection_is_chained_on(store: Path) -> None:
    one, two = SqliteExecutor(str(store)), SqliteExecutor(str(store))
    try:
        for n in range(3):  # one, two, one, two…: each sees the other's entries
            await one.write(_append, f"one-{n}")
            await two.write(_append, f"two-{n}")
        await one.write(_append, "one-last")
    finally:
        await one.close()
        await two.close()
    kinds = [kind for _, kind in _chain(store)]
    assert kinds == ["one-0", "two-0", "one-1", "two-1", "one-2", "two-2", "one-last"]
    assert await _verify(store) is None


async def test_an_entry_rolled_back_with_its_transaction_is_not_the_head(store: Path) -> None:
    executor = SqliteExecutor(str(store))
    try:
        await executor.write(_append, "kept-1")
        with pytest.raises(Refused):
            await executor.write(_append_then_fail, "rolled-back")
        await executor.write(_append, "kept-2")
    finally:
        await executor.close()
    assert _chain(store) == [(1, "kept-1"), (2, "kept-2")]
    assert await _verify(store) is None


async def test_an_entry_rolled_back_to_its_savepoint_is_not_the_head(store: Path) -> None:
    executor = SqliteExecutor(str(store))
    started, release = threading.Event(), threading.Event()

    def hold(tx: Tx) -> None:
        started.set()
        assert release.wait(10), "the test never released the store thread"

    try:
        await executor.write(_append, "first")
        held = executor.write(hold)
        assert await asyncio.to_thread(started.wait, 10)
        # Queued while the store thread is busy: the three share one transaction, each in a
        # savepoint, and the failing one is rolled back to its own.
        group = [
            executor.write(_append, "grouped-1"),
            executor.write(_append_then_fail, "grouped-rolled-back"),
            executor.write(_append, "grouped-2"),
        ]
        release.set()
        await held
        results = await asyncio.gather(*group, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], Refused)
        await executor.write(_append, "after")
    finally:
        release.set()
        await executor.close()
    assert _chain(store) == [(1, "first"), (2, "grouped-1"), (3, "grouped-2"), (4, "after")]
    assert await _verify(store) is None
