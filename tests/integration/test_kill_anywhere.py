"""Fault injection: SIGKILL the engine's process at random moments of the whole cycle.

Each trial drives a few runs through trigger → step a → pause → complete → resume → step b →
finish in driver.py, kills it once to three times at random moments, then lets a last driver
finish, and checks the invariants (invariants.py): every run finished, no recorded step ran
again, no token completed twice. The runs wait in turn on one token (wait.for_token), on two
with wait.for_all and on two with wait.for_any, each group with a short deadline that a kill
sometimes outlives; for a group the run must have resumed with what its group token and its
members recorded. A kill's moment is picked one of three ways, so kills spread
over the cycle and not only over its slowest part (opening and migrating the store): after a
random number of the driver's log lines plus up to 3 ms; at a random time after the driver's
first line, up to how long a clean run takes on this machine; or at a random time after the
spawn, which also cuts interpreters starting up. Trials run two at a time on their own stores.

HITL_FAULT_TRIALS=500 runs more trials (the benchmark mode; the default is 50),
HITL_FAULT_RUNS=N puts N runs in flight per trial (default 6: two of each way to wait), and
HITL_FAULT_SEED=N replays a failing seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import DRIVER, Launcher, cpu_count, wait_for_log
from .invariants import read_log, snapshot, violations

TRIALS = int(os.environ.get("HITL_FAULT_TRIALS", "50"))
RUNS_PER_TRIAL = int(os.environ.get("HITL_FAULT_RUNS", "6"))
SEED = int(os.environ.get("HITL_FAULT_SEED", str(random.randrange(1 << 30))))
BY_PROGRESS, FROM_START = 0.5, 0.35  # shares of the ways to time a kill; the rest: from spawn


@dataclass
class Calibration:
    engine_phase: float  # driver-start line → driver-done line, clean run on a new store
    total: float  # spawn → exit, clean run on a new store
    lines: int  # log lines a clean driver writes


@dataclass
class Trial:
    index: int
    directory: Path
    kills: int = 0
    phases: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    groups: Counter[str] = field(default_factory=Counter)
    """How the group waits ended: "for_all completed", "for_any timed out", …"""


def calibrate(launcher: Launcher, directory: Path, rounds: int = 3) -> Calibration:
    engine, total, lines = [], [], []
    for i in range(rounds):
        store, log = directory / f"cal{i}.db", directory / f"cal{i}.jsonl"
        began = time.monotonic()
        proc = launcher.start(DRIVER, store, log, RUNS_PER_TRIAL)
        assert proc.wait(timeout=90) == 0, launcher.errors(proc)
        total.append(time.monotonic() - began)
        entries = read_log(log)
        engine.append(entries[-1]["t"] - entries[0]["t"])
        lines.append(len(entries))
    return Calibration(statistics.median(engine), statistics.median(total), max(lines))


def phase_at_kill(log: Path, pid: int) -> str:
    """What the killed driver had last logged: where in the cycle the kill landed."""
    mine = [e for e in read_log(log) if e.get("pid") == pid]
    if not mine:
        return "interpreter start"
    last = mine[-1]
    if last["kind"] == "step":
        return f"after step {last['step']}"
    if last["kind"] == "driver-start":
        return "after driver-start (open, migrate, recover, trigger)"
    return f"after {last['kind']}"


def wait_for_lines(log: Path, offset: int, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Return once *count* lines were appended past *offset*, or the driver ended (bounded)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists():
            with open(log, "rb") as f:
                f.seek(offset)
                if f.read().count(b"\n") >= count:
                    return
        time.sleep(0.001)


def sleep_until_kill(
    proc: subprocess.Popen[bytes], log: Path, offset: int, cal: Calibration, rng: random.Random
) -> None:
    """Sleep until a random moment of the driver's life. Three ways to pick the moment, so
    kills spread over the cycle's steps and not only over its slowest part: after a random
    number of the driver's log lines (plus a few ms), at a random time after its start line,
    or at a random time after the spawn."""
    how = rng.random()
    if how < BY_PROGRESS:
        wait_for_lines(log, offset, rng.randint(1, cal.lines), proc)
        time.sleep(rng.uniform(0, 0.003))  # about the gap between two lines of the cycle
        return
    if how < BY_PROGRESS + FROM_START:
        # On a timeout the kill still happens; the final run shows what went wrong.
        with contextlib.suppress(TimeoutError):
            wait_for_log(log, "driver-start", proc.pid)
        time.sleep(rng.uniform(0, cal.engine_phase * 1.2))
        return
    time.sleep(rng.uniform(0, cal.total * 1.1))


def run_trial(trial: Trial, launcher: Launcher, cal: Calibration, rng: random.Random) -> None:
    store, log = trial.directory / "runs.db", trial.directory / "log.jsonl"
    for _ in range(rng.choice([1, 1, 2, 3])):
        offset = log.stat().st_size if log.exists() else 0
        proc = launcher.start(DRIVER, store, log, RUNS_PER_TRIAL)
        sleep_until_kill(proc, log, offset, cal, rng)
        if launcher.kill(proc):
            trial.kills += 1
            trial.phases.append(phase_at_kill(log, proc.pid))
        elif proc.returncode != 0:
            trial.problems.append(
                f"a driver exited with {proc.returncode} before its kill: {launcher.errors(proc)}"
            )
    proc = launcher.start(DRIVER, store, log, RUNS_PER_TRIAL)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        launcher.kill(proc)
        code = None
    if code != 0:
        trial.problems.append(f"the final driver exited with {code}: {launcher.errors(proc)}")
    snap = asyncio.run(snapshot(f"sqlite:///{store}"))
    trial.problems += violations(snap, read_log(log), RUNS_PER_TRIAL, trial.kills)
    for run in snap.runs:
        if run.wait != "token" and isinstance(run.output, dict):
            ended = "timed out" if run.output["decision"].get("timed_out") else "completed"
            trial.groups[f"for_{run.wait} {ended}"] += 1


def one_trial(index: int, directory: Path, cal: Calibration) -> Trial:
    trial = Trial(index, directory)
    directory.mkdir()
    procs = Launcher(directory)
    try:
        run_trial(trial, procs, cal, random.Random(SEED + index))
    except Exception as exc:  # a helper timed out: report it with the trial, keep going
        trial.problems.append(f"the trial itself failed: {exc!r}")
    finally:
        procs.close()
    return trial


@pytest.mark.slow
@pytest.mark.timeout(120 + 6 * TRIALS)
def test_kill_anywhere(launcher: Launcher, tmp_path: Path) -> None:
    cal = calibrate(launcher, tmp_path)
    workers = min(2, cpu_count())
    print(
        f"\nfault injection: seed {SEED}, {TRIALS} trials × {RUNS_PER_TRIAL} runs, {workers} at a "
        f"time; a clean driver takes {cal.total:.2f} s, {cal.engine_phase:.3f} s of it after "
        f"its imports, and writes {cal.lines} log lines"
    )
    began = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        trials = list(
            pool.map(lambda i: one_trial(i, tmp_path / f"trial{i:04d}", cal), range(TRIALS))
        )
    elapsed = time.monotonic() - began

    kills = sum(t.kills for t in trials)
    phases = Counter(p for t in trials for p in t.phases)
    print(f"{kills} kills in {elapsed:.1f} s ({elapsed / TRIALS:.2f} s per trial); they landed:")
    for phase, n in phases.most_common():
        print(f"  {n:4d}  {phase}")
    groups = sum((t.groups for t in trials), Counter[str]())
    print("group waits: " + ", ".join(f"{n} {how}" for how, n in sorted(groups.items())))
    failed = [t for t in trials if t.problems]
    report = "\n".join(
        f"trial {t.index} ({t.kills} kills, {t.phases}; files in {t.directory}):\n  "
        + "\n  ".join(t.problems)
        for t in failed
    )
    assert not failed, (
        f"{len(failed)} of {TRIALS} trials broke an invariant (seed {SEED}):\n{report}"
    )
    # The kills must have cut runs mid-cycle, not only interpreters starting up.
    mid_cycle = sum(
        n for p, n in phases.items() if p not in ("interpreter start", "after driver-done")
    )
    assert mid_cycle >= TRIALS // 2, phases
