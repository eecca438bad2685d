"""A long-running engine in its own process: `python serve.py STORE LOG N_RUNS STOP_FILE [HOLD]`.

Starts an engine (which takes over and resumes whatever is queued or orphaned), makes sure
the runs s0..sN-1 exist, waits until none of them is QUEUED or EXECUTING, and prints one JSON
line: {"pid": ..., "waiting": {token id: run id}}. With HOLD > 0 its runs' step "a" takes HOLD
seconds and the line is printed at once, without waiting for the runs to settle. Then it keeps
executing, as a console would, until STOP_FILE appears (exit 0) or 60 s pass (exit 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from workload import TAG, TASK, payload

from hitl_desktop.engine import Engine, RunStatus

SETTLED = (RunStatus.WAITING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


async def serve(store: str, log: str, n_runs: int, stop: Path, hold: float) -> int:
    deadline = time.monotonic() + 60
    engine = Engine(f"sqlite:///{store}")
    await engine.start()
    try:
        runs = [
            await engine.trigger(TASK, payload(f"s{i}", log, hold), idempotency_key=f"s{i}")
            for i in range(n_runs)
        ]
        if not hold:
            for run in runs:
                await engine.wait_for(run.id, SETTLED, timeout=30)
        tokens = await engine.list_tokens(status="WAITING", tags=[TAG], limit=10_000)
        waiting = {t.id: t.run_id for t in sorted(tokens, key=lambda t: t.created_at)}
        print(json.dumps({"pid": os.getpid(), "waiting": waiting}), flush=True)
        while not stop.exists():
            if time.monotonic() > deadline:
                return 3
            await asyncio.sleep(0.01)
        return 0
    finally:
        await engine.stop()


def main(argv: list[str]) -> int:
    store, log, n_runs, stop = argv[1], argv[2], int(argv[3]), Path(argv[4])
    hold = float(argv[5]) if len(argv) > 5 else 0.0
    return asyncio.run(serve(store, log, n_runs, stop, hold))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
