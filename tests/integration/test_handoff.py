"""Runs queued or handed back in the store must reach an engine that can execute them, and
a running engine must relay every change other processes commit.

Each test here pins an engine bug found by these tests and since fixed.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from hitl_desktop.engine import Engine, RunTriggered

from .conftest import BURST, SERVE, Launcher, wait_for_log
from .workload import TASK, payload

MORE_THAN_A_CLAIM = 150  # claim_queued takes at most 100 runs at a time


async def until_none_queued(engine: Engine, timeout: float) -> dict[str, int]:
    """Poll the store until no run is QUEUED; the counts per status either way."""
    deadline = time.monotonic() + timeout
    while (counts := await engine.count_runs()).get("QUEUED", 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return counts


async def test_an_engine_that_starts_takes_every_queued_run(tmp_path: Path) -> None:
    url, log = f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "log.jsonl")
    cli = Engine(url)  # opened, never started: its triggers are QUEUED for the next engine
    try:
        for i in range(MORE_THAN_A_CLAIM):
            await cli.trigger(TASK, payload(f"q{i}", log), idempotency_key=f"q{i}")
    finally:
        await cli.stop()
    engine = Engine(url)
    await engine.start()
    try:
        counts = await until_none_queued(engine, timeout=5)
    finally:
        await engine.stop()
    assert counts.get("QUEUED", 0) == 0, counts


async def test_a_running_engine_takes_every_run_another_process_queues(
    launcher: Launcher, tmp_path: Path
) -> None:
    url, log = f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "log.jsonl"
    engine = Engine(url, poll_interval=2.0)  # the whole burst lands between two polls
    await engine.start()
    try:
        burst = launcher.start(BURST, tmp_path / "runs.db", log, MORE_THAN_A_CLAIM)
        assert await asyncio.to_thread(burst.wait, 30) == 0, launcher.errors(burst)
        await asyncio.sleep(2.5)  # one poll later
        counts = await until_none_queued(engine, timeout=5)
    finally:
        await engine.stop()
    assert counts.get("QUEUED", 0) == 0, counts


async def test_runs_a_clean_stop_hands_back_are_taken_by_a_running_engine(
    launcher: Launcher, tmp_path: Path
) -> None:
    store, log, stop = tmp_path / "runs.db", tmp_path / "log.jsonl", tmp_path / "stop"
    url = f"sqlite:///{store}"
    survivor = launcher.start(SERVE, store, log, 0, stop)  # a second console, already running
    await asyncio.to_thread(launcher.first_json_line, survivor)
    engine = Engine(url)
    await engine.start()
    try:
        run = await engine.trigger(TASK, payload("h0", str(log), 3.0), idempotency_key="h0")
        await asyncio.to_thread(wait_for_log, log, "step-start", os.getpid())
        # Let the survivor poll the RunTriggered event first: a poll that sees it claims
        # QUEUED runs, which would hide the bug when the stop lands in the same poll window.
        await asyncio.sleep(0.5)
    finally:
        await engine.stop()  # mid-step: the run goes back to the store, QUEUED
    try:
        await asyncio.to_thread(wait_for_log, log, "step-start", survivor.pid, 5)
        taken = True
    except TimeoutError:
        taken = False
    finally:
        stop.touch()
        await asyncio.to_thread(survivor.wait, 30)
    assert taken, f"the running engine did not take run {run.id} (QUEUED by a stop) in 5 s"


async def test_a_running_engine_relays_every_event_another_process_commits(
    launcher: Launcher, tmp_path: Path
) -> None:
    n_runs = 1200  # however a poll splits the burst, one side holds more than 500 events
    url, log = f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "log.jsonl"
    engine = Engine(url, tasks=[], poll_interval=0.5)  # knows no task: only relays
    await engine.start()
    seen = 0
    try:
        async with engine.events() as stream:
            burst = launcher.start(BURST, tmp_path / "runs.db", log, n_runs)
            assert await asyncio.to_thread(burst.wait, 60) == 0, launcher.errors(burst)
            deadline = time.monotonic() + 30  # correctness, not speed: a loaded machine polls late
            while seen < n_runs and time.monotonic() < deadline:
                event = stream.get_nowait()
                if event is None:
                    await asyncio.sleep(0.05)
                else:
                    seen += isinstance(event, RunTriggered)
    finally:
        await engine.stop()
    assert seen == n_runs, f"events() relayed {seen} of {n_runs} RunTriggered events"
