"""What the three peer programs share: the measurements, run the same way for each system.

Each peer program (hitl_peer.py, dbos_peer.py, langgraph_peer.py) defines a `System` with four
coroutines and hands it to `main()`:

* `start(path)` / `stop()`: open the system on a SQLite file, close it.
* `begin(i)`: start run *i* and return once it is waiting for its decision, as the application
  learns it (an event, a returned interrupt); returns a handle for `decide`.
* `decide(handle, value)`: send the decision and return once the run has finished, with its result.
* `settings()`: the durability settings as read back from the system's own connection.

One invocation does one measurement in a fresh process on a fresh store, chosen by the first
argument, and prints one line `RESULT {json}`:

* `seq N`: N full cycles, one run in flight; resume latency = from the call that sends the
  decision to the run's result in hand, per cycle.
* `conc N --width W`: N full cycles with W runs in flight (a new run as soon as one ends).
* `waiting N`: prints `BASELINE` once started and warmed up, reads a line from stdin (the driver
  reads this process's RSS in between), starts N runs, WAITING_BATCH at a time, each batch until
  all of it waits (printing `PROGRESS {json}` after each), prints `WAITING {json}` once all N
  wait, reads a line again, and exits. The driver reads VmRSS/VmHWM from /proc itself.

Every measurement is preceded by WARMUP cycles (imports, caches, statement compilation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

WARMUP = 20
TOKEN_TIMEOUT_S = 3600.0
"""Each system's wait gets the same one-hour deadline (none of them expires in a run)."""
WAITING_BATCH = 250
"""Runs started at once in the waiting measurement, each batch until all of it waits."""


class System(Protocol):
    name: str

    async def start(self, path: Path) -> None: ...
    async def stop(self) -> None: ...
    async def begin(self, i: int) -> Any: ...
    async def decide(self, handle: Any, value: int) -> Any: ...
    async def settings(self) -> dict[str, Any]: ...


SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
"""PRAGMA synchronous's numbers."""


def expected(i: int, value: int) -> int:
    """What every system's run returns: step a adds 1 to the input, step b adds the decision."""
    return i + 1 + value


@dataclass
class Seq:
    seconds: float = 0.0
    resume_ms: list[float] = field(default_factory=list)


async def sequential(system: System, n: int, first: int = 0) -> Seq:
    clock = time.perf_counter
    out = Seq()
    start = clock()
    for i in range(first, first + n):
        handle = await system.begin(i)
        sent = clock()
        result = await system.decide(handle, 7)
        out.resume_ms.append((clock() - sent) * 1000.0)
        if result != expected(i, 7):
            raise RuntimeError(f"{system.name}: run {i} returned {result!r}")
    out.seconds = clock() - start
    return out


async def concurrent(system: System, n: int, width: int, first: int = 0) -> float:
    """Seconds for *n* cycles with *width* runs in flight."""
    counter = iter(range(first, first + n))

    async def worker() -> None:
        for i in counter:  # shared iterator: each cycle is taken by exactly one worker
            handle = await system.begin(i)
            result = await system.decide(handle, 3)
            if result != expected(i, 3):
                raise RuntimeError(f"{system.name}: run {i} returned {result!r}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return time.perf_counter() - start


async def start_waiting(system: System, n: int, batch: int = WAITING_BATCH) -> None:
    """Start *n* runs, *batch* at a time, each batch until all of it waits; the handles are
    dropped (nothing per run is kept by the driver)."""
    start = time.perf_counter()
    for first in range(0, n, batch):
        last = min(n, first + batch)
        await asyncio.gather(*(system.begin(i) for i in range(first, last)))
        emit("PROGRESS", {"waiting": last, "seconds": time.perf_counter() - start})


def sqlite_settings(path: Path) -> dict[str, Any]:
    """The journal mode of the file as another connection sees it (WAL is persistent)."""
    con = sqlite3.connect(path)
    try:
        return {"journal_mode_on_file": con.execute("PRAGMA journal_mode").fetchone()[0]}
    finally:
        con.close()


def emit(tag: str, data: Any = None) -> None:
    line = tag if data is None else f"{tag} {json.dumps(data)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for_driver() -> None:
    # The driver answers after reading /proc/<pid>/status; EOF (driver gone) also continues.
    sys.stdin.readline()


async def run(system: System, args: argparse.Namespace) -> None:
    path = Path(args.db)
    await system.start(path)
    try:
        await sequential(system, WARMUP, first=10_000_000)
        if args.mode == "seq":
            seq = await sequential(system, args.n)
            emit(
                "RESULT",
                {
                    "cycles": args.n,
                    "seconds": seq.seconds,
                    "cycles_per_s": args.n / seq.seconds,
                    "resume_ms": seq.resume_ms,
                    "settings": {**await system.settings(), **sqlite_settings(path)},
                },
            )
        elif args.mode == "conc":
            seconds = await concurrent(system, args.n, args.width)
            emit(
                "RESULT",
                {
                    "cycles": args.n,
                    "width": args.width,
                    "seconds": seconds,
                    "cycles_per_s": args.n / seconds,
                },
            )
        elif args.mode == "waiting":
            emit("BASELINE")
            await asyncio.to_thread(wait_for_driver)
            start = time.perf_counter()
            await start_waiting(system, args.n)
            emit("WAITING", {"runs": args.n, "seconds": time.perf_counter() - start})
            await asyncio.to_thread(wait_for_driver)
        else:
            raise SystemExit(f"unknown mode {args.mode!r}")
    finally:
        await system.stop()


def main(system: System) -> None:
    parser = argparse.ArgumentParser(description=f"one {system.name} measurement")
    parser.add_argument("mode", choices=["seq", "conc", "waiting"])
    parser.add_argument("n", type=int)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--db", required=True, help="the SQLite file (created)")
    args = parser.parse_args()
    asyncio.run(run(system, args))
    sys.stdout.flush()
    # Some peers leave non-daemon threads behind; the measurement is done and reported.
    os._exit(0)
