"""What the benchmarks need to know about the machine and the disk they run on: shared by
engine_bench.py, engine_ab.py and peers/driver.py (which puts this directory on sys.path)."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def filesystem_of(path: Path) -> tuple[str, str]:
    """(mount point, fs type) of *path*, from /proc/mounts; ("?", "?") when unknown."""
    best = ("", "?")
    target = str(path.resolve())
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            mnt = parts[1]
            inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best[0]):
                best = (mnt, parts[2])
    return best if best[0] else ("?", "?")


def pick_dir(requested: str | None, prefix: str = "hitl-bench-") -> Path:
    """A fresh directory on the repository's disk (not tmpfs): under *requested* if given, else
    the system temp dir if it is on the same device, else a hidden directory next to the
    repository."""
    if requested:
        base = Path(requested)
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.gettempdir())
        if base.stat().st_dev != ROOT.stat().st_dev or filesystem_of(base)[1] == "tmpfs":
            base = ROOT.parent / ".hitl-bench-tmp"
            base.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
