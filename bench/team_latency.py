"""Team mode on PostgreSQL: how soon another process hears of a commit, and that it hears of
every one. `bench/team_latency.py [--runs N]`.

Starts a private PostgreSQL server with fsync and synchronous commits on (tests/pg.py), a
listening engine in this process (review only: it executes nothing) and a writer in another
process that triggers runs one at a time, printing each one's id once its commit returned.
Prints, from that moment to the event in this process (one wall clock, one machine), the
median and 90th percentile with LISTEN/NOTIFY and with polling only (every 50 ms), and how
many of the events arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hitl_desktop.engine import Engine, RunTriggered  # noqa: E402
from tests import pg  # noqa: E402

WRITER = """
import asyncio, json, sys, time
from hitl_desktop.engine import Engine, task

@task("noted")
async def noted(ctx, payload):
    return payload

async def main(url, n, gap):
    engine = Engine(url, tasks=[noted], execute=False, listen=False)
    await engine.open()
    for i in range(n):
        run = await engine.trigger("noted", i)
        print(json.dumps({"run": run.id, "committed": time.time()}), flush=True)
        await asyncio.sleep(gap)
    await engine.stop()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


async def measure(url: str, n: int, listen: bool) -> tuple[list[float], int]:
    listener = Engine(url, tasks=[], execute=False, poll_interval=0.05, listen=listen)
    await listener.start()
    heard: dict[str, float] = {}
    try:
        async with listener.events() as stream:
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, url, str(n), "0.02"],
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                async with asyncio.timeout(60 + n * 0.1):
                    async for event in stream:
                        if isinstance(event, RunTriggered):
                            heard[event.run_id] = time.time()
                            if len(heard) == n:
                                break
            except TimeoutError:
                pass
            out, _ = await asyncio.to_thread(writer.communicate, timeout=60)
    finally:
        await listener.stop()
    committed = {d["run"]: d["committed"] for d in map(json.loads, out.decode().splitlines())}
    return [(heard[r] - committed[r]) * 1000 for r in heard if r in committed], len(heard)


def _quantile(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=300, help="commits per mode (default 300)")
    args = parser.parse_args()
    server = pg.start(durable=True)
    if server is None:
        print("PostgreSQL is not installed (make test installs it)", file=sys.stderr)
        return 1
    os.environ["HITL_TEST_PG"] = server.url
    try:
        for listen in (True, False):
            name, url = pg.create_database("hitl_latency")
            try:
                ms, heard = await measure(url, args.runs, listen)
            finally:
                pg.drop_database(name)
            mode = "LISTEN/NOTIFY" if listen else "polling (50 ms)"
            median, p90 = statistics.median(ms), _quantile(ms, 0.9)
            print(
                f"{mode:16s} commit → event in another process: median {median:.1f} ms, "
                f"p90 {p90:.1f} ms; heard {heard} of {args.runs}"
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
