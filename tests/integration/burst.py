"""Commit many events at once from another process: `python burst.py STORE LOG N_RUNS`.

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


async def burst(store: str, log: str, n_runs: int) -> None:
    engine = Engine(f"sqlite:///{store}")
    await engine.open()
    try:
        began = time.monotonic()
        await asyncio.gather(*(engine.trigger(TASK, payload(f"b{i}", log)) for i in range(n_runs)))
        elapsed = time.monotonic() - began
    finally:
        await engine.stop()
    print(json.dumps({"triggered": n_runs, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    asyncio.run(burst(sys.argv[1], sys.argv[2], int(sys.argv[3])))
