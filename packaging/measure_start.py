"""Time from launching `hitl-desktop` to its main window on screen, offscreen; median of N.

    python packaging/measure_start.py EXECUTABLE [--runs 5]

Each run launches EXECUTABLE --startup-probe (which starts the console normally, prints
``shown_at=<epoch>`` once the main window has been exposed and painted, and quits) with
QT_QPA_PLATFORM=offscreen and a data directory of its own, and subtracts the launch time.
One unmeasured first launch creates and migrates the store, as a user's first start does;
its time is printed separately. Exit status 1 when a launch fails.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHOWN = re.compile(r"^shown_at=([0-9.]+)$", re.MULTILINE)
PYTHON = re.compile(r"^python_at=([0-9.]+)$", re.MULTILINE)


def launch(exe: str, env: dict[str, str]) -> tuple[float, float]:
    """(launch → main window shown, launch → Python running the app's code), in seconds."""
    start = time.time()
    done = subprocess.run(
        [exe, "--startup-probe"], env=env, capture_output=True, text=True, timeout=120
    )
    match = SHOWN.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(
            f"{exe} --startup-probe failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
        )
    python = PYTHON.search(done.stdout)
    return float(match.group(1)) - start, (float(python.group(1)) - start if python else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executable")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hitl-start-") as tmp:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DISPLAY", "WAYLAND_DISPLAY", "HITL_STORE", "HITL_TARGET")
        }
        env |= {
            "QT_QPA_PLATFORM": "offscreen",
            "HITL_DATA_DIR": str(Path(tmp) / "data"),
            "HITL_CONFIG_DIR": str(Path(tmp) / "config"),
        }
        first, _ = launch(args.executable, env)
        results = [launch(args.executable, env) for _ in range(args.runs)]
    times = [shown for shown, _ in results]
    runs = " ".join(f"{t:.2f}" for t in times)
    print(f"start_median_s={statistics.median(times):.2f}")
    print(f"start_runs_s={runs}")
    print(f"start_first_s={first:.2f}")
    # How much of it is the bootloader and the interpreter starting, before the app's code.
    print(f"start_python_median_s={statistics.median(p for _, p in results):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
