"""Every change another process commits reaches a listening engine, on PostgreSQL too, where
transactions commit in another order than they took their event ids."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hitl_desktop.engine import Engine, RunTriggered, task
from tests import pg

from .conftest import BURST, Launcher


@pytest.fixture
def pg_store():
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_events")
    try:
        yield url
    finally:
        pg.drop_database(name)


async def test_a_listener_misses_none_of_two_processes_concurrent_commits(
    launcher: Launcher, tmp_path: Path, pg_store: str
) -> None:
    n_runs = 400  # per process, each triggering them all at once over its connection pool
    listener = Engine(pg_store, tasks=[], execute=False)  # knows no task: only relays
    await listener.start()
    seen: set[str] = set()
    try:
        async with listener.events() as stream:
            bursts = [
                launcher.start(BURST, pg_store, tmp_path / f"log{i}.jsonl", n_runs, f"p{i}-")
                for i in range(2)
            ]
            for burst in bursts:
                assert await asyncio.to_thread(burst.wait, 120) == 0, launcher.errors(burst)
            deadline = time.monotonic() + 30  # correctness, not speed
            while len(seen) < 2 * n_runs and time.monotonic() < deadline:
                event = stream.get_nowait()
                if event is None:
                    await asyncio.sleep(0.05)
                elif isinstance(event, RunTriggered):
                    seen.add(event.run_id)
        triggered = {run.id for run in await listener.list_runs(limit=10 * n_runs)}
    finally:
        await listener.stop()
    assert len(triggered) == 2 * n_runs
    missed = triggered - seen
    assert not missed, f"the listener missed {len(missed)} of {2 * n_runs} RunTriggered events"


@task("noted")
async def noted(ctx, payload):
    return payload


async def _arrives(stream, run_id: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        event = stream.get_nowait()
        if event is None:
            await asyncio.sleep(0.01)
        elif isinstance(event, RunTriggered) and event.run_id == run_id:
            return True
    return False


async def test_a_notification_brings_another_engines_change_before_the_periodic_look(
    pg_store: str,
) -> None:
    # This listener reads the log by itself only every 30 s: only a notification can bring
    # the change within 10 s.
    listener = Engine(pg_store, tasks=[], execute=False, poll_interval=30)
    writer = Engine(pg_store, tasks=[noted], execute=False)
    await listener.start()
    await writer.open()
    try:
        assert listener.db.listening
        async with listener.events() as stream:
            await asyncio.sleep(0.2)  # the watcher is waiting now, not looking
            run = await writer.trigger("noted", 1)
            assert await _arrives(stream, run.id, within=10)
    finally:
        await writer.stop()
        await listener.stop()


async def test_a_lost_listening_connection_is_replaced_and_nothing_is_missed(
    pg_store: str,
) -> None:
    listener = Engine(pg_store, tasks=[], execute=False, poll_interval=0.2, heartbeat_interval=1.0)
    writer = Engine(pg_store, tasks=[noted], execute=False)
    await listener.start()
    await writer.open()
    try:
        assert listener.db.listening
        database = pg_store.rsplit("/", 1)[1]
        pg.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE query LIKE 'LISTEN%' AND datname = '{database}'"
        )
        deadline = time.monotonic() + 10
        while listener.db.listening and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not listener.db.listening  # the connection is gone
        async with listener.events() as stream:
            run = await writer.trigger("noted", 1)  # maybe while no one listens
            assert await _arrives(stream, run.id, within=10)
            deadline = time.monotonic() + 10
            while not listener.db.listening and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert listener.db.listening
            again = await writer.trigger("noted", 2)
            assert await _arrives(stream, again.id, within=10)
    finally:
        await writer.stop()
        await listener.stop()
