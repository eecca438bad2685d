"""Compare the engine at a git revision with the work tree's, interleaved in one process:
`bench/engine_ab.py [--rev REV] [--sync FULL|OFF] [--reps N]`.

On a shared machine two runs of `engine_bench.py` minutes apart differ by more than most
changes do. Here both engines run in one event loop, each on its own store in the same
directory, alternating repetitions of 100 sequential cycles (trigger → step → pause →
complete_token → resume → step → done, learnt from events as engine_bench does), so a burst of
load spoils both alike. `--sync OFF` leaves out the fsyncs: CPU and thread handoffs only.

The revision's `hitl_desktop/engine` is extracted with `git archive` and imported as a
package of its own (the engine's imports are relative); each copy registers the task itself.
Prints best and median ms per cycle for each, and the median of the paired ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import pick_dir  # noqa: E402

CHUNK = 100
WARMUP = 200


def _add(x: int, y: int) -> int:
    return x + y


LEAVES = ("engine", "units")
"""The engine's package and the leaf packages below it, copied side by side."""


def extract(rev: str, into: Path) -> None:
    """The engine at *rev* as `engine_base.engine`, the work tree's as `engine_tree.engine`; each
    beside the leaf packages it imports (``units``), as in ``hitl_desktop``."""
    for name, source in (("engine_base", rev), ("engine_tree", None)):
        root = into / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        for part in LEAVES:
            if source is None:
                if (ROOT / "hitl_desktop" / part).exists():
                    shutil.copytree(ROOT / "hitl_desktop" / part, root / part)
                continue
            listed = subprocess.run(
                ["git", "-C", str(ROOT), "ls-tree", source, f"hitl_desktop/{part}"],
                check=True,
                capture_output=True,
            ).stdout
            if not listed:  # not there yet at that revision
                continue
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", source, f"hitl_desktop/{part}"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
            (root / "hitl_desktop" / part).rename(root / part)
            shutil.rmtree(root / "hitl_desktop")


def register(engine: ModuleType) -> None:
    @engine.task("ab")
    async def ab(ctx: Any, payload: int) -> int:
        a = await ctx.step("a", _add, payload, 1)
        token = await engine.wait.create_token(timeout="1h")
        result = await engine.wait.for_token(token)
        return int(await ctx.step("b", _add, a, result.output))


async def cycles(engine: Any, n: int) -> float:
    """ms per cycle over *n* sequential cycles."""
    async with engine.events() as stream:
        start = time.perf_counter()
        for i in range(n):
            run = await engine.trigger("ab", i)
            async for event in stream:
                if event.run_id == run.id and type(event).__name__ == "RunPaused":
                    break
            await engine.complete_token(event.token_id, i)
            async for event in stream:
                if event.run_id == run.id and type(event).__name__ == "RunCompleted":
                    break
        return (time.perf_counter() - start) / n * 1000


async def compare(packages: dict[str, ModuleType], store_dir: Path, sync: str, reps: int) -> None:
    engines = {}
    for name, package in packages.items():
        engines[name] = package.Engine(f"sqlite:///{store_dir / name}.db", synchronous=sync)
        await engines[name].start()
        await cycles(engines[name], WARMUP)
    ms: dict[str, list[float]] = {name: [] for name in packages}
    try:
        for rep in range(reps):
            order = list(packages) if rep % 2 == 0 else list(reversed(packages))
            for name in order:
                ms[name].append(await cycles(engines[name], CHUNK))
    finally:
        for engine in engines.values():
            await engine.stop()
    base, tree = ms["engine_base"], ms["engine_tree"]
    paired = statistics.median(t / b for b, t in zip(base, tree, strict=True))
    for label, xs in (("base", base), ("tree", tree)):
        print(f"{label}: best {min(xs):.3f} ms, median {statistics.median(xs):.3f} ms per cycle")
    print(f"tree ÷ base, median of {reps} paired repetitions: {paired:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rev", default="HEAD", help="the base revision (default HEAD)")
    parser.add_argument("--sync", default="FULL", choices=["FULL", "OFF"])
    parser.add_argument("--reps", type=int, default=24, help="repetitions of each (default 24)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-ab-"))
    store_dir = pick_dir(None)
    try:
        extract(args.rev, work)
        sys.path.insert(0, str(work))
        names = ("engine_base", "engine_tree")
        packages = {name: importlib.import_module(f"{name}.engine") for name in names}
        for package in packages.values():
            register(package)
        print(f"base {args.rev} against the work tree, synchronous={args.sync}, {args.reps} reps")
        asyncio.run(compare(packages, store_dir, args.sync, args.reps))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
