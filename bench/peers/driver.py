"""hitl-desktop against DBOS and LangGraph, side by side: `make bench-peers` (bench/peers/run.sh).

Each measurement runs one system's program (hitl_peer.py, dbos_peer.py, langgraph_peer.py) in
a fresh child process on a fresh SQLite file in a fresh directory on the repository's disk.
The systems alternate in every round, A B C for one run in flight, then A B C for 32 in flight,
so a burst of load from elsewhere on the machine hits all three alike; rates are medians over
the rounds, latency percentiles are over every sequential cycle of every round. Then each
program, once, starts 10,000 runs and holds them waiting while this driver reads the child's
VmRSS and VmHWM (peak) from /proc.

What each figure is (see common.py for the cycle):

* cycles/s, 1 in flight: start a run → it waits → send the decision → the result is in hand.
* cycles/s, 32 in flight: the same with 32 concurrent drivers, a new run as soon as one ends.
* resume p50 / p99: from the call that sends the decision to the run's result in hand
  (hitl: complete_token → RunCompleted; DBOS: send → handle.get_result(); LangGraph: the
  ainvoke(Command(resume=...)) call), in the process that runs the system.
* RSS with 10,000 waiting: the child's peak RSS (VmHWM) once all 10,000 wait; its RSS before
  the runs (started and warmed up) is printed beside it; nothing is subtracted. The runs are
  started 250 at a time, each batch until all of it waits. A system that has not got all of
  them waiting within the cap (BENCH_WAITING_CAP_S, 180 s) has its RSS read at the cap, with
  the number then waiting: a lower bound, marked as such.

The last line printed is one JSON object: {"hitl": F, "dbos": F, "langgraph": F}.

Environment overrides (for a shorter or longer run): BENCH_ROUNDS (5), BENCH_SEQ_CYCLES (100
per round), BENCH_CONC_CYCLES (256 per round), BENCH_WIDTH (32), BENCH_WAITING (10000),
BENCH_WAITING_CAP_S (180), BENCH_SYSTEMS (hitl,dbos,langgraph), BENCH_DIR (where the stores
go), BENCH_PLOT (the PNG). Peers' settings: BENCH_DBOS_POLLING_S (0.001),
BENCH_DBOS_JOURNAL (WAL), BENCH_LANGGRAPH_DURABILITY (exit).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import selectors
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # bench/: the helpers engine_bench.py uses too
from machine import filesystem_of, load_average, percentile, pick_dir  # noqa: E402

SYSTEMS = ("hitl", "dbos", "langgraph")
LABELS = {"hitl": "hitl-desktop", "dbos": "DBOS", "langgraph": "LangGraph"}
MEASURE_TIMEOUT_S = 300.0
KEYS = ("cycles_per_s", "cycles_per_s_32", "resume_p50_ms", "resume_p99_ms", "rss_mb_10k_waiting")
THREADS = "Threads"
HIGHER_IS_BETTER = {"cycles_per_s", "cycles_per_s_32"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


# ---------------------------------------------------------------- helpers


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of *pid*, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                value = int(rest.split()[0])
                out[key] = value * 1024 if key != "Threads" else value
    return out


def engine_source() -> str:
    """Where the children import hitl_desktop from, and its git state when it is this tree."""
    spec = importlib.util.find_spec("hitl_desktop")
    where = Path(spec.origin).parent if spec and spec.origin else None
    if where is None:
        return "hitl_desktop not found"
    note = ""
    if where.parent == ROOT:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            head = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--", "hitl_desktop/engine"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            note = f" (git {head}" + (", engine files modified" if dirty else "") + ")"
    return f"{where}{note}"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


# ---------------------------------------------------------------- children


class ChildFailed(RuntimeError):
    pass


def command(system: str, *args: str) -> list[str]:
    return [sys.executable, str(HERE / f"{system}_peer.py"), *args]


def spawn(cmd: list[str], stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd,
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,  # its own process group: killed as one on a timeout
    )


def kill(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)


def measure(system: str, workdir: Path, tag: str, *args: str) -> dict[str, Any]:
    """Run one measurement in a fresh child on a fresh store; returns its RESULT."""
    store = workdir / f"{system}-{tag}"
    store.mkdir()
    child = spawn(command(system, *args, "--db", str(store / "store.db")))
    try:
        out, err = child.communicate(timeout=MEASURE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill(child)
        raise ChildFailed(
            f"{system} {' '.join(args)}: no result after {MEASURE_TIMEOUT_S:.0f} s"
        ) from None
    finally:
        kill(child)
        shutil.rmtree(store, ignore_errors=True)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise ChildFailed(f"{system} {' '.join(args)} exited {child.returncode}:\n{err[-3000:]}")


class Lines:
    """The child's stdout, line by line, with a deadline. Reads the raw descriptor: a buffered
    reader could hold a complete line that select() would never report."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        self.child = child
        self.fd = child.stdout.fileno()
        self.buffer = b""

    def next(self, deadline: float) -> str | None:
        """The next line, or None at the deadline."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if not sel.select(timeout=min(left, 1.0)):
                    if self.child.poll() is not None:
                        raise ChildFailed(f"exited {self.child.returncode}")
                    continue
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise ChildFailed("closed its output")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


def read_line(
    lines: Lines, want: str, timeout: float, progress: list[str] | None = None
) -> str | None:
    """The next line starting with *want*; None after *timeout* seconds when *progress* is
    given (it collects the PROGRESS lines meanwhile), else an error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.next(deadline)
        except ChildFailed as e:
            raise ChildFailed(f"{e} before {want}") from None
        if line is None:
            if progress is not None:
                return None
            raise ChildFailed(f"no {want} line after {timeout:.0f} s")
        if line.startswith(want):
            return line
        if progress is not None and line.startswith("PROGRESS "):
            progress.append(line)


@dataclass
class Waiting:
    runs: int
    """How many runs were waiting when the RSS was read (fewer than asked at the cap)."""
    asked: int
    seconds: float
    baseline: dict[str, int]
    waiting: dict[str, int]

    @property
    def complete(self) -> bool:
        return self.runs >= self.asked


def measure_waiting(system: str, workdir: Path, runs: int, cap: float) -> Waiting:
    store = workdir / f"{system}-waiting"
    store.mkdir()
    # stderr to a file, not a pipe: nobody reads it meanwhile, and a full pipe would block.
    with tempfile.TemporaryFile("w+") as errors:
        cmd = command(system, "waiting", str(runs), "--db", str(store / "store.db"))
        child = spawn(cmd, errors)
        assert child.stdin is not None
        lines = Lines(child)
        try:
            read_line(lines, "BASELINE", MEASURE_TIMEOUT_S)
            baseline = proc_status(child.pid)
            child.stdin.write("go\n")
            child.stdin.flush()
            progress: list[str] = []
            line = read_line(lines, "WAITING", cap, progress)
            status = proc_status(child.pid)
            if line is None:  # the cap: what is waiting now, and the RSS it takes
                last = json.loads(progress[-1][len("PROGRESS ") :]) if progress else {}
                return Waiting(last.get("waiting", 0), runs, cap, baseline, status)
            seconds = json.loads(line[len("WAITING ") :])["seconds"]
            child.stdin.write("done\n")
            child.stdin.flush()
            return Waiting(runs, runs, seconds, baseline, status)
        except ChildFailed as e:
            kill(child)
            errors.seek(0)
            raise ChildFailed(f"{system} waiting: {e}\n{errors.read()[-3000:]}") from None
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
            kill(child)
            shutil.rmtree(store, ignore_errors=True)


# ---------------------------------------------------------------- the run


@dataclass
class Figures:
    seq_rates: list[float] = field(default_factory=list)
    conc_rates: list[float] = field(default_factory=list)
    resume_ms: list[float] = field(default_factory=list)
    waiting: Waiting | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, saved: dict[str, Any]) -> Figures:
        waiting = saved.pop("waiting")
        return cls(**saved, waiting=Waiting(**waiting) if waiting else None)

    def summary(self) -> dict[str, float | None]:
        def med(xs: list[float]) -> float | None:
            return round(statistics.median(xs), 1) if xs else None

        return {
            "cycles_per_s": med(self.seq_rates),
            "cycles_per_s_32": med(self.conc_rates),
            "resume_p50_ms": round(percentile(self.resume_ms, 50), 3) if self.resume_ms else None,
            "resume_p99_ms": round(percentile(self.resume_ms, 99), 3) if self.resume_ms else None,
            "rss_mb_10k_waiting": (
                round(self.waiting.waiting["VmHWM"] / 2**20, 1) if self.waiting else None
            ),
        }


def run(args: argparse.Namespace) -> dict[str, Figures]:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    workdir = pick_dir(os.environ.get("BENCH_DIR"), prefix="hitl-bench-peers-")
    mount, fstype = filesystem_of(workdir)
    print(f"stores          : fresh SQLite files under {workdir} ({fstype} on {mount})")
    print(
        f"machine         : {os.cpu_count()} cpus, {platform.machine()}, python "
        f"{platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"load average {load_average()}"
    )
    print(
        f"peers           : dbos {version('dbos')}, langgraph {version('langgraph')}, "
        f"langgraph-checkpoint-sqlite {version('langgraph-checkpoint-sqlite')}, "
        f"aiosqlite {version('aiosqlite')}, sqlalchemy {version('sqlalchemy')}"
    )
    print(f"engine          : {engine_source()}")
    print(
        f"plan            : {args.rounds} rounds of [{' '.join(systems)}] × {args.seq} cycles "
        f"1 in flight, then [{' '.join(systems)}] × {args.conc} cycles {args.width} in flight; "
        f"then {args.waiting:,} waiting runs each"
    )
    print(flush=True)
    figures = {s: Figures() for s in systems}
    began = time.perf_counter()
    try:
        for rnd in range(args.rounds):
            for kind in ("seq", "conc"):
                for system in systems:
                    fig = figures[system]
                    tag = f"r{rnd}-{kind}"
                    try:
                        if kind == "seq":
                            res = measure(system, workdir, tag, "seq", str(args.seq))
                            fig.seq_rates.append(res["cycles_per_s"])
                            fig.resume_ms.extend(res["resume_ms"])
                            fig.settings = res.get("settings", {})
                            p50 = percentile(res["resume_ms"], 50)
                            note = f"{res['cycles_per_s']:8.1f} cycles/s, resume p50 {p50:.2f} ms"
                        else:
                            res = measure(
                                system,
                                workdir,
                                tag,
                                "conc",
                                str(args.conc),
                                "--width",
                                str(args.width),
                            )
                            fig.conc_rates.append(res["cycles_per_s"])
                            note = f"{res['cycles_per_s']:8.1f} cycles/s"
                    except ChildFailed as e:
                        fig.errors.append(str(e))
                        note = "FAILED: " + str(e).splitlines()[0]
                    print(
                        f"round {rnd + 1}/{args.rounds} {kind:<4} {LABELS[system]:<13}{note}  "
                        f"[{time.perf_counter() - began:5.0f} s, load {load_average()}]",
                        flush=True,
                    )
        if args.waiting > 0:
            for system in systems:
                fig = figures[system]
                try:
                    fig.waiting = measure_waiting(system, workdir, args.waiting, args.waiting_cap)
                    w = fig.waiting
                    capped = "" if w.complete else f" (cap {args.waiting_cap:.0f} s reached)"
                    note = (
                        f"RSS {w.baseline['VmRSS'] / 2**20:.1f} MB before → "
                        f"{w.waiting['VmRSS'] / 2**20:.1f} MB with {w.runs:,} waiting{capped}, "
                        f"peak {w.waiting['VmHWM'] / 2**20:.1f} MB; threads "
                        f"{w.baseline['Threads']} → {w.waiting['Threads']}; "
                        f"{w.seconds:.1f} s to start them"
                    )
                except ChildFailed as e:
                    fig.errors.append(str(e))
                    note = "FAILED: " + str(e).splitlines()[0]
                print(
                    f"waiting        {LABELS[system]:<13}{note}  "
                    f"[{time.perf_counter() - began:5.0f} s, load {load_average()}]",
                    flush=True,
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


# ---------------------------------------------------------------- report


def fmt(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if key.startswith("cycles"):
        return f"{value:,.1f}"
    if key.startswith("resume"):
        return f"{value:.2f}"
    return f"{value:,.1f}"


def ratio_note(key: str, hitl: float | None, peer: float | None) -> str:
    if not hitl or not peer:
        return "—"
    r = hitl / peer
    if key in HIGHER_IS_BETTER:
        verdict = "hitl ahead" if r > 1 else "PEER AHEAD"
    else:
        verdict = f"hitl {1 / r:.1f}× lower" if r < 1 else "PEER LOWER"
    return f"{r:.3g} ({verdict})"


def threads(w: Waiting | None) -> str:
    return f"{w.baseline[THREADS]} → {w.waiting[THREADS]}" if w else ""


def report(figures: dict[str, Figures], args: argparse.Namespace) -> dict[str, Any]:
    summaries = {s: f.summary() for s, f in figures.items()}
    names = {
        "cycles_per_s": "cycles/s, 1 in flight",
        "cycles_per_s_32": f"cycles/s, {args.width} in flight",
        "resume_p50_ms": "resume p50, ms",
        "resume_p99_ms": "resume p99, ms",
        "rss_mb_10k_waiting": f"peak RSS, MB, {args.waiting:,} waiting",
    }
    systems = list(figures)
    print()
    head = f"{'figure':<30}" + "".join(f"{LABELS[s]:>15}" for s in systems)
    print(head)
    print("-" * len(head))
    for key in KEYS:
        cells = []
        for s in systems:
            cell = fmt(key, summaries[s][key])
            w = figures[s].waiting
            if key == "rss_mb_10k_waiting" and w is not None and not w.complete:
                cell = f"≥ {cell}*"
            cells.append(f"{cell:>15}")
        print(f"{names[key]:<30}" + "".join(cells))
    print(
        f"{'  RSS before the runs, MB':<30}"
        + "".join(
            f"{(f.waiting.baseline['VmRSS'] / 2**20 if f.waiting else math.nan):>15.1f}"
            for f in figures.values()
        )
    )
    print(
        f"{'  RSS with them waiting, MB':<30}"
        + "".join(
            f"{(f.waiting.waiting['VmRSS'] / 2**20 if f.waiting else math.nan):>15.1f}"
            for f in figures.values()
        )
    )
    print(
        f"{'  runs waiting at that point':<30}"
        + "".join(f"{(f.waiting.runs if f.waiting else 0):>15,}" for f in figures.values())
    )
    print(
        f"{'  threads before → waiting':<30}"
        + "".join(f"{threads(f.waiting):>15}" for f in figures.values())
    )
    print(
        f"{'  samples (latency)':<30}"
        + "".join(f"{len(f.resume_ms):>15}" for f in figures.values())
    )
    capped = [s for s, f in figures.items() if f.waiting and not f.waiting.complete]
    for s in capped:
        w = figures[s].waiting
        assert w is not None
        print(
            f"* {LABELS[s]}: only {w.runs:,} of {w.asked:,} runs were waiting when the "
            f"{args.waiting_cap:.0f} s cap was reached; its RSS was read then, so the figure is a "
            f"lower bound (BENCH_WAITING_CAP_S raises the cap)"
        )
    print()
    print("per round, cycles/s (min / median / max):")
    for s, f in figures.items():
        for label, xs in (("1 in flight", f.seq_rates), (f"{args.width} in flight", f.conc_rates)):
            if xs:
                print(
                    f"  {LABELS[s]:<13} {label:<13} {min(xs):9.1f} {statistics.median(xs):9.1f}"
                    f" {max(xs):9.1f}"
                )
    print()
    print("settings as each system ran (read back from its own connection):")
    for s, f in figures.items():
        print(f"  {LABELS[s]:<13} {json.dumps(f.settings)}")
    if "hitl" in figures and len(figures) > 1:
        print()
        print("ratios hitl / peer (cycles/s: higher is better for hitl; the rest: lower):")
        for peer in systems:
            if peer == "hitl":
                continue
            print(f"  vs {LABELS[peer]}")
            for key in KEYS:
                print(
                    f"    {names[key]:<30} "
                    f"{ratio_note(key, summaries['hitl'][key], summaries[peer][key])}"
                )
        peers = [p for p in systems if p != "hitl"]
        p50s = [summaries[p]["resume_p50_ms"] for p in peers]
        hitl_p50 = summaries["hitl"]["resume_p50_ms"]
        if hitl_p50 and all(p50s):
            fastest = min(p50s)  # type: ignore[type-var]
            print(
                f"  resume p50, fastest peer ÷ hitl: {fastest / hitl_p50:.1f}× "
                f"(target ≥ 10×: {'met' if fastest / hitl_p50 >= 10 else 'MISSED'})"
            )
    errors = [(s, e) for s, f in figures.items() for e in f.errors]
    if errors:
        print()
        print(f"{len(errors)} measurement(s) failed:")
        for s, e in errors:
            print(f"  {LABELS[s]}: {e}")
    return summaries


def plot(figures: dict[str, Figures], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    except ImportError:
        print("(matplotlib is not installed: no plot)")
        return
    colors = {"hitl": "#1b9e77", "dbos": "#d95f02", "langgraph": "#7570b3"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    data = [(s, sorted(f.resume_ms)) for s, f in figures.items() if f.resume_ms]
    for s, xs in data:
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        p50, p99 = percentile(xs, 50), percentile(xs, 99)
        ax1.step(
            xs,
            ys,
            where="post",
            color=colors.get(s),
            lw=1.8,
            label=f"{LABELS[s]}: p50 {p50:.2f} ms, p99 {p99:.1f} ms",
        )
        ax1.axvline(p50, color=colors.get(s), lw=0.8, ls=":")
    ax1.set_xscale("log")
    ax1.xaxis.set_major_locator(FixedLocator([0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]))
    ax1.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax1.xaxis.set_minor_formatter(NullFormatter())
    ax1.set_xlabel("resume latency, ms (log scale): decision sent → run finished")
    ax1.set_ylabel("fraction of cycles ≤ x")
    ax1.set_title("distribution (ECDF)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(loc="lower right", fontsize=8)
    if data:
        parts = ax2.violinplot(
            [[math.log10(x) for x in xs] for _, xs in data], showmedians=True, widths=0.8
        )
        for body, (s, _) in zip(parts["bodies"], data, strict=True):
            body.set_facecolor(colors.get(s))
            body.set_alpha(0.6)
        ax2.set_xticks(range(1, len(data) + 1), [LABELS[s] for s, _ in data])
        logs = [math.log10(x) for _, xs in data for x in xs]
        ticks = list(range(math.floor(min(logs)), math.ceil(max(logs)) + 1))
        ax2.set_yticks(ticks, [f"{10**t:g}" for t in ticks])
        ax2.set_ylabel("resume latency, ms (log scale)")
        ax2.set_title("density (violin, median marked)")
        ax2.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot            : {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 1,000 waiting runs")
    parser.add_argument("--rounds", type=int, default=env_int("BENCH_ROUNDS", 5))
    parser.add_argument("--seq", type=int, default=env_int("BENCH_SEQ_CYCLES", 100))
    parser.add_argument("--conc", type=int, default=env_int("BENCH_CONC_CYCLES", 256))
    parser.add_argument("--width", type=int, default=env_int("BENCH_WIDTH", 32))
    parser.add_argument("--waiting", type=int, default=env_int("BENCH_WAITING", 10_000))
    parser.add_argument(
        "--waiting-cap",
        type=float,
        default=float(os.environ.get("BENCH_WAITING_CAP_S", "180")),
        help="seconds a system may take to get its runs waiting; past it, the RSS is read with "
        "the runs waiting so far and reported as a lower bound",
    )
    parser.add_argument("--systems", default=os.environ.get("BENCH_SYSTEMS", ",".join(SYSTEMS)))
    parser.add_argument(
        "--plot",
        default=os.environ.get("BENCH_PLOT", str(ROOT / "docs" / "benchmarks_latency.png")),
        help="where to write the latency plot ('' for none)",
    )
    parser.add_argument(
        "--results",
        default=os.environ.get("BENCH_RESULTS", str(HERE / "results" / "last.json")),
        help="where to save every measurement as JSON ('' for nowhere)",
    )
    parser.add_argument(
        "--replot",
        metavar="RESULTS_JSON",
        help="measure nothing: print the report and draw the plot from a saved --results file",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seq, args.conc, args.waiting = 2, 50, 128, 1000
    started = time.perf_counter()
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        for key in ("rounds", "seq", "conc", "width", "waiting", "waiting_cap"):
            setattr(args, key, saved["args"][key])
        figures = {s: Figures.load(f) for s, f in saved["figures"].items()}
        machine = saved["machine"]
    else:
        figures = run(args)
        machine = (
            f"{os.cpu_count()} cpus, python {platform.python_version()}, "
            f"sqlite {sqlite3.sqlite_version}"
        )
        if args.results:
            path = Path(args.results)
            path.parent.mkdir(parents=True, exist_ok=True)
            keep = ("rounds", "seq", "conc", "width", "waiting", "waiting_cap", "systems")
            path.write_text(
                json.dumps(
                    {
                        "args": {k: getattr(args, k) for k in keep},
                        "machine": machine,
                        "figures": {s: asdict(f) for s, f in figures.items()},
                    }
                )
            )
            print(f"measurements    : {path}")
    summaries = report(figures, args)
    if args.plot:
        plot(
            figures,
            Path(args.plot),
            f"resume latency, {sum(len(f.resume_ms) for f in figures.values()):,} cycles; "
            f"SQLite WAL + synchronous=FULL for all; {machine}",
        )
    print(f"total {time.perf_counter() - started:.0f} s, load average at the end {load_average()}")
    print(json.dumps(summaries))
    return 1 if any(f.errors for f in figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
