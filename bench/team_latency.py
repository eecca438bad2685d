"""Team mode on PostgreSQL: how soon another process hears of a commit, and that it hears of
every one; and what a review's decision costs beside a plain completion.
`bench/team_latency.py [--runs N] [--decisions N]`.

Starts a private PostgreSQL server with fsync and synchronous commits on (tests/pg.py), a
listening engine in this process (review only: it executes nothing) and a writer in another
process that triggers runs one at a time, printing each one's id once its commit returned.
Prints, from that moment to the event in this process (one wall clock, one machine), the
median and 90th percentile with LISTEN/NOTIFY and with polling only (every 50 ms), and how
many of the events arrived.

Then the decision path, in one engine that decides and executes (this process): a plain run's
token completed with `complete_token`, against a review's (a task declared `audit=True`, a
requirement with a rule, one approval and the hash seen) decided with `decide`, which goes
through the store's function hitl_decide and writes the decision's audit entry. Each is timed
from the call to the run's RunCompleted in this process, in short interleaved chunks; printed:
p50 and p99 of each, and review ÷ plain at p50.
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

from hitl_desktop.engine import (  # noqa: E402
    Engine,
    EventStream,
    RunTriggered,
)
from tests import pg  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from cycle import cycle, plain_task, review_task  # noqa: E402
from machine import percentile  # noqa: E402

CHUNK = 20
"""Decisions of each kind per interleaved chunk."""

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


async def _decisions(engine: Engine, stream: EventStream, n: int, review: bool) -> list[float]:
    """Milliseconds from the deciding call to RunCompleted, for *n* runs one after another."""
    return [(await cycle(engine, stream, i, review))[1] for i in range(n)]


async def decision_path(url: str, n: int) -> tuple[list[float], list[float], list[float]]:
    """(plain ms, review ms, review ÷ plain p50 per chunk), *n* of each, interleaved."""
    engine = Engine(url, tasks=[plain_task, review_task])
    await engine.start()
    plain: list[float] = []
    review: list[float] = []
    paired: list[float] = []
    try:
        async with engine.events() as stream:
            await _decisions(engine, stream, 10, False)  # warm-up: statements, the pool
            await _decisions(engine, stream, 10, True)
            for chunk in range(max(1, n // CHUNK)):
                # Alternate which goes first, so neither always follows the other.
                if chunk % 2:
                    r = await _decisions(engine, stream, CHUNK, True)
                    p = await _decisions(engine, stream, CHUNK, False)
                else:
                    p = await _decisions(engine, stream, CHUNK, False)
                    r = await _decisions(engine, stream, CHUNK, True)
                plain += p
                review += r
                paired.append(statistics.median(r) / statistics.median(p))
    finally:
        await engine.stop()
    return plain, review, paired


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=300, help="commits per mode (default 300)")
    parser.add_argument(
        "--decisions",
        type=int,
        default=200,
        help=f"decisions of each kind, in interleaved chunks of {CHUNK} (default 200)",
    )
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
            median, p90 = statistics.median(ms), percentile(ms, 90)
            print(
                f"{mode:16s} commit → event in another process: median {median:.1f} ms, "
                f"p90 {p90:.1f} ms; heard {heard} of {args.runs}"
            )
        name, url = pg.create_database("hitl_decisions")
        try:
            plain, review, paired = await decision_path(url, args.decisions)
        finally:
            pg.drop_database(name)
        for label, ms in (("complete_token", plain), ("decide (review)", review)):
            print(
                f"{label:16s} call → run completed in the deciding process: median "
                f"{statistics.median(ms):.1f} ms, p99 {percentile(ms, 99):.1f} ms; {len(ms)} runs"
            )
        ratio = statistics.median(review) / statistics.median(plain)
        print(
            f"review ÷ plain at p50: {ratio:.2f} (per chunk of {CHUNK}: min {min(paired):.2f}, "
            f"median {statistics.median(paired):.2f}, max {max(paired):.2f})"
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
