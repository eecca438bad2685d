"""Engine benchmark: `make bench`, or `bench/engine_bench.py [--quick] [--cycles N] [--dir PATH]`.

What it measures, on a file-backed SQLite store (WAL, synchronous=FULL, the engine's default):

* cycles/s, one run in flight: trigger → step → pause → complete_token → resume → step → done,
  one after the other. The driver learns that a run paused and that it completed from
  `engine.events()`; there are no polling sleeps.
* cycles/s, 32 runs in flight: 32 drivers doing the same cycle, a new run as soon as one ends.
* resume latency p50/p99: from `complete_token` returning to `RunCompleted` seen by the driver,
  over every sequential cycle.
* the review cycle, beside the plain one: the same cycle in a task declared `audit=True` whose
  token carries a `Requirement` (a rule, one approval, the hash of what was seen), decided with
  `engine.decide(..., seen=HASH)`: the requirement is checked, the verdict recorded and the
  decision made an audit-trail entry in the decision's transaction, and the run's end is one
  too. Its sequential chunks are interleaved with the plain ones in every repetition. Review
  cycles/s and review resume p50/p99, from `decide` returning to `RunCompleted` as for the
  plain one (`decide` returns the token built in its own transaction: it reads nothing after
  the commit), and `review_resume_ratio` = review ÷ plain resume p50 (target ≤ 1.20). The
  stricter figure is the whole decision, from the call (`complete_token` / `decide`) to
  `RunCompleted`, which also counts the decision's own transaction (its checks, verdict and
  audit entry): p50/p99 of each (`decision_p50_ms`, `review_decision_p50_ms`, ...), and
  `review_ratio` = review ÷ plain at p50 in this run (also held to ≤ 1.20);
  `review_ratio_paired` is the median of that ratio per repetition.
* added RSS per waiting run: VmRSS (after gc) before and after 10,000 runs were triggered and
  all paused, divided by 10,000; with the asyncio tasks and threads alive at that point.
* the physical limit: the raw `sqlite3` rate, on the same disk and the same settings, of four
  one-row commits per cycle (trigger, pause, decision, finish: the fewest durable commits a
  cycle needs), `BEGIN IMMEDIATE; INSERT; COMMIT` each. `ratio` = engine cycles/s with one run
  in flight ÷ that limit.

The machine is shared and noisy, so engine and limit are measured in short interleaved
repetitions. Rates are medians over them. `ratio` is the best repetition of the engine ÷ the
best of the limit: when other processes write to the same disk, every fsync waits behind
theirs, the limit collapses, the engine's own CPU cost hides inside the wait, and a ratio of
medians overstates the engine (one busy run here gave 0.81 from medians, 0.39 best ÷ best;
idle runs give about the same for both). `ratio_median` is the ratio of the medians.
The last line printed is one JSON object with the tracked figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import sqlite3
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from cycle import PLAIN_TASK, cycle  # noqa: E402
from machine import filesystem_of, load_average, percentile, pick_dir  # noqa: E402

from hitl_desktop.engine import (  # noqa: E402
    Engine,
    EventStream,
    RunCompleted,
    RunFailed,
    RunPaused,
)

TASK = PLAIN_TASK
CONCURRENCY = 32
WAITING_RUNS = 10_000
SYNCHRONOUS = "FULL"
CHUNK = 100
"""Sequential (and raw) cycles per repetition."""
MIN_REPS = 3
BUDGET_S = 120.0
"""Repetitions past MIN_REPS are skipped when the machine is so slow the run would exceed this."""
TARGETS = {
    "resume_p50_ms": 5.0,
    "ratio": 0.5,
    "rss_bytes_per_waiting_run": 2048,
    "review_ratio": 1.20,
    "review_resume_ratio": 1.20,
}


# ---------------------------------------------------------------- helpers


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def os_threads() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return threading.active_count()


def settled_rss() -> int:
    for _ in range(3):
        gc.collect()
    return rss_bytes()


# ---------------------------------------------------------------- engine measurements


@dataclass
class Sequential:
    cycles: int
    seconds: float
    resume_ms: list[float] = field(default_factory=list)
    decision_ms: list[float] = field(default_factory=list)
    """From the call that decides to RunCompleted: resume_ms plus the decision's commit."""

    @property
    def rate(self) -> float:
        return self.cycles / self.seconds


async def sequential(engine: Engine, cycles: int, review: bool = False) -> Sequential:
    """One run in flight: each cycle starts when the previous one's RunCompleted arrives.
    With *review*, the run is the review task's and its token is decided with engine.decide."""
    clock = time.perf_counter
    latencies: list[float] = []
    calls: list[float] = []
    async with engine.events() as stream:
        start = clock()
        for i in range(cycles):
            resumed, called = await cycle(engine, stream, i, review)
            latencies.append(resumed)
            calls.append(called)
        seconds = clock() - start
    return Sequential(cycles, seconds, latencies, calls)


class Dispatcher:
    """Routes events from one stream to per-run futures, for many concurrent drivers."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream
        self._futures: dict[tuple[str, str], asyncio.Future[Any]] = {}

    def future(self, kind: str, run_id: str) -> asyncio.Future[Any]:
        key = (kind, run_id)
        fut = self._futures.get(key)
        if fut is None:
            fut = self._futures[key] = asyncio.get_running_loop().create_future()
        return fut

    async def wait(self, kind: str, run_id: str) -> Any:
        try:
            return await self.future(kind, run_id)
        finally:
            self._futures.pop((kind, run_id), None)

    async def serve(self) -> None:
        async for event in self._stream:
            if isinstance(event, RunPaused):
                self.future("paused", event.run_id).set_result(event)
            elif isinstance(event, RunCompleted):
                self.future("done", event.run_id).set_result(event)
            elif isinstance(event, RunFailed):
                error = RuntimeError(f"run {event.run_id} failed: {event.error}")
                for kind in ("paused", "done"):
                    fut = self.future(kind, event.run_id)
                    if not fut.done():
                        fut.set_exception(error)


async def concurrent(engine: Engine, cycles: int, width: int = CONCURRENCY) -> float:
    """*width* runs in flight until *cycles* have completed; returns cycles/s."""
    remaining = cycles

    async with engine.events() as stream:
        dispatcher = Dispatcher(stream)
        server = asyncio.create_task(dispatcher.serve())

        async def driver() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                run = await engine.trigger(TASK, remaining)
                paused = await dispatcher.wait("paused", run.id)
                await engine.complete_token(paused.token_id, 1)
                await dispatcher.wait("done", run.id)

        start = time.perf_counter()
        await asyncio.gather(*(driver() for _ in range(width)))
        seconds = time.perf_counter() - start
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    return cycles / seconds


@dataclass
class Waiting:
    runs: int
    seconds: float
    rss_before: int
    rss_after: int
    tasks_before: int
    tasks_after: int
    threads_before: int
    threads_after: int
    running_after: int
    waiting_in_store: int
    task_names: list[str]
    thread_names: list[str]

    @property
    def per_run(self) -> float:
        return (self.rss_after - self.rss_before) / self.runs


async def waiting_runs(engine: Engine, count: int, batch: int = 250) -> Waiting:
    """Trigger *count* runs, wait until every one has paused, and measure what they cost."""
    before_waiting = (await engine.count_runs()).get("WAITING", 0)
    await asyncio.sleep(0)
    tasks_before = len(asyncio.all_tasks())
    threads_before = os_threads()
    rss_before = settled_rss()

    start = time.perf_counter()
    all_paused = asyncio.get_running_loop().create_future()
    async with engine.events() as stream:

        async def count_paused() -> None:
            seen = 0
            async for event in stream:
                if isinstance(event, RunPaused):
                    seen += 1
                    if seen == count:
                        all_paused.set_result(None)
                        return
                elif isinstance(event, RunFailed):
                    all_paused.set_exception(RuntimeError(f"a run failed: {event.error}"))
                    return

        counter = asyncio.create_task(count_paused())
        for first in range(0, count, batch):
            n = min(batch, count - first)
            # Results are dropped at once: the driver keeps nothing per run.
            await asyncio.gather(*(engine.trigger(TASK, first + i) for i in range(n)))
        await all_paused
        await counter
    seconds = time.perf_counter() - start
    # Let the last runs' tasks unwind after their RunPaused was published.
    for _ in range(20):
        if not engine._runner.running:
            break
        await asyncio.sleep(0.01)
    tasks_after = len(asyncio.all_tasks())
    threads_after = os_threads()
    rss_after = settled_rss()
    waiting = (await engine.count_runs()).get("WAITING", 0) - before_waiting
    return Waiting(
        count,
        seconds,
        rss_before,
        rss_after,
        tasks_before,
        tasks_after,
        threads_before,
        threads_after,
        len(engine._runner.running),
        waiting,
        sorted(t.get_name() for t in asyncio.all_tasks()),
        sorted(t.name for t in threading.enumerate()),
    )


# ---------------------------------------------------------------- the physical limit


def raw_limit(path: Path, cycles: int, synchronous: str = SYNCHRONOUS) -> float:
    """Cycles/s of four one-row durable commits per cycle with plain sqlite3, no event loop."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={synchronous}")
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, kind TEXT, at REAL)")
        for _ in range(20):  # warm the file, the WAL and the page cache
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO t (kind, at) VALUES (?, ?)", ("warm", 0.0))
            con.execute("COMMIT")
        execute = con.execute
        start = time.perf_counter()
        for _ in range(cycles):
            for kind in ("trigger", "pause", "decision", "finish"):
                execute("BEGIN IMMEDIATE")
                execute("INSERT INTO t (kind, at) VALUES (?, ?)", (kind, 1.0))
                execute("COMMIT")
        seconds = time.perf_counter() - start
    finally:
        con.close()
    return cycles / seconds


# ---------------------------------------------------------------- main


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def verdict(key: str, value: float) -> str:
    target = TARGETS[key]
    ok = value >= target if key == "ratio" else value <= target
    return "met" if ok else "MISSED"


async def main_async(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    quick = args.quick
    total = args.cycles or (400 if quick else 2000)
    reps = max(MIN_REPS, total // CHUNK)
    chunk = max(10, total // reps)
    conc_chunk = CONCURRENCY * 8
    mount, fstype = filesystem_of(workdir)
    print(f"store directory : {workdir}  ({fstype} on {mount})")
    print(
        f"settings        : WAL, synchronous={SYNCHRONOUS}; {reps} interleaved repetitions of "
        f"{chunk} raw cycles, {chunk} cycles with 1 run in flight, {chunk} review cycles and "
        f"{conc_chunk} with {CONCURRENCY} in flight; rates are medians over the repetitions"
    )
    print(
        f"machine         : python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cpus, load average {load_average()}"
    )

    began = time.perf_counter()
    engine = Engine(f"sqlite:///{workdir / 'engine.db'}", synchronous=SYNCHRONOUS)
    await engine.start()
    try:
        # Warm-up: imports, statement compilation, the page cache, the WAL files.
        await sequential(engine, 30 if quick else 100)
        await sequential(engine, 30 if quick else 100, review=True)
        await concurrent(engine, CONCURRENCY * 2)
        raw_limit(workdir / "limit.db", 50)

        # Short chunks, interleaved: a burst of load from other processes spoils a few
        # chunks of each kind, and the medians leave them out.
        seq_runs: list[Sequential] = []
        review_runs: list[Sequential] = []
        conc_rates: list[float] = []
        limits: list[float] = []
        paired: list[float] = []
        for rep in range(reps):
            if rep >= MIN_REPS and time.perf_counter() - began > BUDGET_S / 2:
                print(f"  (the machine is slow: stopping after {rep} repetitions)")
                break
            limits.append(raw_limit(workdir / "limit.db", chunk))
            # Alternate which cycle goes first, so neither always follows the raw limit's fsyncs.
            if rep % 2:
                review_runs.append(await sequential(engine, chunk, review=True))
                seq_runs.append(await sequential(engine, chunk))
            else:
                seq_runs.append(await sequential(engine, chunk))
                review_runs.append(await sequential(engine, chunk, review=True))
            conc_rates.append(await concurrent(engine, conc_chunk))
            paired.append(seq_runs[-1].rate / limits[-1])
        print()
        print(f"{'per repetition, cycles/s':<28}{'min':>8}{'median':>8}{'max':>8}")
        for name, xs in (
            ("raw sqlite3 limit", limits),
            ("engine, 1 in flight", [r.rate for r in seq_runs]),
            ("review, 1 in flight", [r.rate for r in review_runs]),
            (f"engine, {CONCURRENCY} in flight", conc_rates),
        ):
            print(f"{name:<28}{min(xs):>8,.0f}{statistics.median(xs):>8,.0f}{max(xs):>8,.0f}")
        print(
            f"{'ratio, paired':<28}{min(paired):>8.2f}{statistics.median(paired):>8.2f}"
            f"{max(paired):>8.2f}"
        )
        review_paired = [
            percentile(r.decision_ms, 50) / percentile(s.decision_ms, 50)
            for s, r in zip(seq_runs, review_runs, strict=True)
        ]
        print(
            f"{'review ÷ plain decision p50':<28}{min(review_paired):>8.2f}"
            f"{statistics.median(review_paired):>8.2f}{max(review_paired):>8.2f}"
        )

        waiting = await waiting_runs(engine, WAITING_RUNS)
        marginal: Waiting | None = None
        # A second batch separates fixed costs (caches, arenas) from per-run ones.
        if not quick and time.perf_counter() - began < BUDGET_S * 0.75:
            marginal = await waiting_runs(engine, WAITING_RUNS)
    finally:
        await engine.stop()

    latencies = [ms for s in seq_runs for ms in s.resume_ms]
    review_latencies = [ms for s in review_runs for ms in s.resume_ms]
    decisions = [ms for s in seq_runs for ms in s.decision_ms]
    review_decisions = [ms for s in review_runs for ms in s.decision_ms]
    review_rate = statistics.median(s.rate for s in review_runs)
    rate = statistics.median(s.rate for s in seq_runs)
    rate32 = statistics.median(conc_rates)
    limit = statistics.median(limits)
    best_rate = max(s.rate for s in seq_runs)
    best_limit = max(limits)
    result: dict[str, Any] = {
        "cycles_per_s": round(rate, 1),
        "cycles_per_s_32": round(rate32, 1),
        "limit_cycles_per_s": round(limit, 1),
        "ratio": round(best_rate / best_limit, 3),
        "resume_p50_ms": round(percentile(latencies, 50), 3),
        "resume_p99_ms": round(percentile(latencies, 99), 3),
        "rss_bytes_per_waiting_run": round(waiting.per_run, 1),
        "ratio_median": round(rate / limit, 3),
        "cycles_per_s_best": round(best_rate, 1),
        "limit_cycles_per_s_best": round(best_limit, 1),
        "review_cycles_per_s": round(review_rate, 1),
        "review_resume_p50_ms": round(percentile(review_latencies, 50), 3),
        "review_resume_p99_ms": round(percentile(review_latencies, 99), 3),
        "review_ratio": round(percentile(review_decisions, 50) / percentile(decisions, 50), 3),
        "review_ratio_paired": round(statistics.median(review_paired), 3),
        "review_resume_ratio": round(
            percentile(review_latencies, 50) / percentile(latencies, 50), 3
        ),
        "decision_p50_ms": round(percentile(decisions, 50), 3),
        "decision_p99_ms": round(percentile(decisions, 99), 3),
        "review_decision_p50_ms": round(percentile(review_decisions, 50), 3),
        "review_decision_p99_ms": round(percentile(review_decisions, 99), 3),
    }

    rows = [
        (
            "cycles/s, 1 in flight",
            fmt_rate(rate),
            f"{1000 / rate:.2f} ms per cycle; best repetition {fmt_rate(best_rate)}",
        ),
        (f"cycles/s, {CONCURRENCY} in flight", fmt_rate(rate32), ""),
        (
            "raw sqlite3 limit, cycles/s",
            fmt_rate(limit),
            f"{1000 / limit:.2f} ms per cycle = 4 commits of {250 / limit * 1000:.0f} µs; "
            f"best repetition {fmt_rate(best_limit)}",
        ),
        (
            "ratio (best 1 in flight ÷ best limit)",
            f"{result['ratio']:.3f}",
            f"target ≥ 0.5: {verdict('ratio', result['ratio'])}; paired median "
            f"{statistics.median(paired):.3f}, of medians {result['ratio_median']:.3f}",
        ),
        (
            "resume p50, ms",
            f"{result['resume_p50_ms']:.2f}",
            f"target ≤ 5: {verdict('resume_p50_ms', result['resume_p50_ms'])}",
        ),
        ("resume p99, ms", f"{result['resume_p99_ms']:.2f}", f"{len(latencies)} samples"),
        (
            "review cycles/s, 1 in flight",
            fmt_rate(review_rate),
            f"{1000 / review_rate:.2f} ms per cycle; {review_rate / rate:.2f}× the plain rate",
        ),
        (
            "review resume p50, ms",
            f"{result['review_resume_p50_ms']:.2f}",
            f"÷ plain {result['review_resume_ratio']:.3f}: target ≤ 1.20: "
            + verdict("review_resume_ratio", result["review_resume_ratio"]),
        ),
        (
            "review resume p99, ms",
            f"{result['review_resume_p99_ms']:.2f}",
            f"{len(review_latencies)} samples",
        ),
        (
            "decision p50 / p99, ms",
            f"{result['decision_p50_ms']:.2f}",
            f"/ {result['decision_p99_ms']:.2f}: complete_token called → RunCompleted",
        ),
        (
            "review decision p50 / p99, ms",
            f"{result['review_decision_p50_ms']:.2f}",
            f"/ {result['review_decision_p99_ms']:.2f}: decide called → RunCompleted",
        ),
        (
            "review ÷ plain decision p50",
            f"{result['review_ratio']:.3f}",
            f"target ≤ 1.20: {verdict('review_ratio', result['review_ratio'])}; paired median "
            f"{result['review_ratio_paired']:.3f}",
        ),
        (
            "RSS per waiting run, bytes",
            f"{waiting.per_run:,.0f}",
            "target ≤ 2048: " + verdict("rss_bytes_per_waiting_run", waiting.per_run),
        ),
        (
            f"  RSS before → after {waiting.runs:,}",
            f"{waiting.rss_before / 2**20:.1f} MiB",
            f"→ {waiting.rss_after / 2**20:.1f} MiB; {waiting.seconds:.1f} s to trigger and "
            "pause them all",
        ),
        ("  runs WAITING in the store", f"{waiting.waiting_in_store:,}", ""),
        (
            "  asyncio tasks before → after",
            f"{waiting.tasks_before} → {waiting.tasks_after}",
            f"runs holding a task: {waiting.running_after}; " + ", ".join(waiting.task_names),
        ),
        (
            "  threads before → after",
            f"{waiting.threads_before} → {waiting.threads_after}",
            ", ".join(waiting.thread_names),
        ),
    ]
    if marginal is not None:
        result["rss_bytes_per_waiting_run_next_10k"] = round(marginal.per_run, 1)
        rows.append(
            (
                f"  RSS per run, the next {marginal.runs:,}",
                f"{marginal.per_run:,.0f}",
                f"{marginal.waiting_in_store + waiting.waiting_in_store:,} waiting; tasks "
                f"{marginal.tasks_after}, threads {marginal.threads_after}",
            )
        )
    print()
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'figure':<{width}}  {'value':>{vwidth}}  note")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 40}")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{vwidth}}  {note}".rstrip())
    print()
    spread = max(limits) / min(limits)
    if spread > 1.5:
        print(
            f"warning: the raw limit varied {spread:.1f}× between repetitions; other processes "
            "are using the disk or the cpus, so the ratio is noisy (run again when idle)"
        )
    print(f"load average at the end: {load_average()}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: fewer repetitions, one batch of waiting runs",
    )
    parser.add_argument(
        "--cycles",
        type=int,
        default=0,
        help="cycles with one run in flight, in all (default 2000; 400 with --quick), measured "
        f"in interleaved repetitions of {CHUNK} with as many raw cycles",
    )
    parser.add_argument("--dir", default=None, help="where to create the store (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the store directory")
    args = parser.parse_args()
    workdir = pick_dir(args.dir)
    started = time.perf_counter()
    try:
        result = asyncio.run(main_async(args, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.1f} s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
