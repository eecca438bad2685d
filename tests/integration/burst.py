"""Commit many events at once from another process: `python burst.py STORE LOG N_RUNS`
(STORE: a SQLite file, or a store URL).

Triggers N_RUNS runs concurrently through an engine that is only opened (as a script or the
CLI would), so the store groups them into a few transactions, and prints one JSON line:
{"triggered": N_RUNS, "seconds": how long it took}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from workload import TASK, payload

from hitl_desktop.engine import Engine


async def burst(store: str, log: str, n_runs: int, prefix: str = "") -> None:
    engine = Engine(store if "://" in store else f"sqlite:///{store}")
    await engine.open()
    try:
        began = time.monotonic()
        await asyncio.gather(
            *(engine.trigger(TASK, payload(f"b{prefix}{i}", log)) for i in range(n_runs))
        )
        elapsed = time.monotonic() - began
    finally:
        await engine.stop()
    print(json.dumps({"triggered": n_runs, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    asyncio.run(burst(*sys.argv[1:3], int(sys.argv[3]), *sys.argv[4:5]))
