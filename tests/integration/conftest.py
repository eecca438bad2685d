"""Subprocess plumbing for the integration tests: launch the scripts here, never leak one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .invariants import read_log

HERE = Path(__file__).parent
DRIVER = HERE / "driver.py"
RACER = HERE / "racer.py"
SERVE = HERE / "serve.py"
BURST = HERE / "burst.py"
OPENER = HERE / "opener.py"


class Launcher:
    """Starts the helper scripts with this interpreter; kills whatever is left at teardown.

    Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[subprocess.Popen[bytes]] = []
        self._files: dict[int, tuple[Path, Path]] = {}

    def start(self, script: Path, *args: object) -> subprocess.Popen[bytes]:
        stem = self.directory / f"{script.stem}-{len(self.procs) + 1}"
        out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
        with open(out, "wb") as out_file, open(err, "wb") as err_file:
            proc = subprocess.Popen(
                [sys.executable, str(script), *map(str, args)],
                stdout=out_file,
                stderr=err_file,
                cwd=self.directory,
            )
        self.procs.append(proc)
        self._files[proc.pid] = (out, err)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return self._files[proc.pid][0].read_text()

    def errors(self, proc: subprocess.Popen[bytes]) -> str:
        return self._files[proc.pid][1].read_text()

    def first_json_line(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> Any:
        """The first complete line *proc* printed, as JSON (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.output(proc)
            if "\n" in text:
                return json.loads(text.split("\n", 1)[0])
            self._check_alive(proc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.args} printed nothing within {timeout} s")
            time.sleep(0.005)

    def wait_for_file(
        self, path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0
    ) -> None:
        """Poll until *proc* has created *path* (bounded)."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            self._check_alive(proc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear within {timeout} s")
            time.sleep(0.005)

    def _check_alive(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}: {self.errors(proc)}")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> bool:
        """SIGKILL *proc* and reap it; True if the signal is what ended it."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        self.procs.clear()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    procs = Launcher(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


def wait_for_log(log_path: Path, kind: str, pid: int, timeout: float = 15.0) -> dict[str, object]:
    """Poll the log until *pid* has written an entry of *kind* (2 ms steps, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in read_log(log_path):
            if entry.get("kind") == kind and entry.get("pid") == pid:
                return entry
        time.sleep(0.002)
    raise TimeoutError(f"pid {pid} wrote no {kind!r} line to {log_path} within {timeout} s")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
