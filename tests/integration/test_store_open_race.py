"""Processes create the same new store at the same moment: every one must open it.

The store's migration module promises that "two processes opening a new store at once migrate
it once"; this checks that none of them fails on the way, over many simultaneous opens
(three processes at a time: two collide too rarely for a test that must fail while the bug is
there).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from .conftest import OPENER, Launcher

PROCESSES, STORES = 3, 40


async def test_processes_opening_a_new_store_at_once_all_succeed(
    launcher: Launcher, tmp_path: Path
) -> None:
    at = time.time() + 3.0  # all interpreters have imported the engine and Alembic by then
    procs = [launcher.start(OPENER, tmp_path, STORES, at) for _ in range(PROCESSES)]
    failed = {}
    for proc in procs:
        assert await asyncio.to_thread(proc.wait, 60) == 0, launcher.errors(proc)
        failed[proc.pid] = json.loads(launcher.output(proc))["failed"]
    opens = PROCESSES * STORES
    n_failed = sum(len(f) for f in failed.values())
    print(f"\n{n_failed} of {opens} simultaneous opens of a new store failed")
    assert n_failed == 0, failed
