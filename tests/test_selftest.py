"""`hitl-desktop --self-test` and the startup probe, in this process and in a fresh one."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from hitl_desktop import selftest


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def run(argv: list[str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = selftest.main(argv, out=out)
    return status, out.getvalue().splitlines()


def line(lines: list[str], text: str) -> str:
    found = [entry for entry in lines if text in entry]
    assert found, f"no line with {text!r} in:\n" + "\n".join(lines)
    return found[0]


def test_every_check_passes_in_process_and_the_refund_is_written(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    status, lines = run(["--self-test", "--report", str(tmp_path / "report.txt")])

    assert status == 0, "\n".join(lines)
    assert line(lines, "Qt started").startswith("ok ")
    assert line(lines, "app icon loaded").startswith("ok ")
    assert line(lines, "store migrated to revision").startswith("ok ")
    demo = line(lines, "demo request 'Refund $20 on invoice 1042'")
    assert demo.startswith("ok ") and "applied" in demo and "on invoice 1042" in demo
    assert line(lines, "on-demand imports").startswith("ok ")
    kr = line(lines, "keyring backend:")
    assert kr.startswith("ok ") and "MemoryKeyring" in kr and ", usable" in kr
    assert line(lines, "main window shown").startswith("ok ")
    assert lines[-1].startswith("passed: 8 checks; total ")
    assert memory_keyring.values == {}  # queried, never written
    # The same report in the file (a windowed Windows executable has no stdout).
    assert (tmp_path / "report.txt").read_text().splitlines() == lines


def test_a_missing_resource_fails_the_run_and_names_the_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    monkeypatch.setattr("hitl_desktop.resources.resource_path", lambda name="": tmp_path / name)

    status, lines = run([])

    assert status == 1
    assert line(lines, "app icon:").startswith("FAIL ")
    assert "hitl-desktop.svg is missing" in line(lines, "app icon:")
    assert lines[-1].startswith("FAILED: 1 of 8 checks (app icon)")


def test_no_usable_keyring_is_reported_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        report = selftest.Report(io.StringIO())
        selftest._keyring(report)
    finally:
        keyring.set_keyring(previous)

    (check,) = report.checks
    assert check.status == "ok"
    assert "keyring backend: none" in check.what
    assert "not usable here" in check.what and "Secret Service" in check.what


def test_unexpected_arguments_are_refused() -> None:
    assert selftest.main(["--self-test", "--nonsense"], out=io.StringIO()) == 2


def fresh_env(tmp_path: Path) -> dict[str, str]:
    """A child environment with no display, no D-Bus session and nothing of the user's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "QT_QPA_PLATFORM",
            "DBUS_SESSION_BUS_ADDRESS",
            "HITL_STORE",
            "HITL_TARGET",
        )
    }
    env["HITL_DATA_DIR"] = str(tmp_path / "data")
    env["HITL_CONFIG_DIR"] = str(tmp_path / "config")
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    return env


def test_the_self_test_runs_in_a_fresh_process_without_a_display(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from hitl_desktop.selftest import main; raise SystemExit(main())"],
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("hitl-desktop self-test (from source, Python ")
    assert "platform offscreen" in line(lines, "Qt started")
    assert "applied" in line(lines, "demo request")
    assert line(lines, "keyring backend:").startswith("ok ")  # usable or not: both pass
    assert lines[-1].startswith("passed: 8 checks")
    assert not (tmp_path / "data").exists()  # everything happened in a temporary directory


def test_the_startup_probe_prints_when_the_window_is_shown_and_quits(tmp_path: Path) -> None:
    env = fresh_env(tmp_path) | {"QT_QPA_PLATFORM": "offscreen"}
    launched = time.time()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from hitl_desktop.selftest import startup_probe; raise SystemExit(startup_probe([]))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    values = dict(
        entry.split("=", 1)
        for entry in done.stdout.splitlines()
        if entry.startswith(("python_at=", "shown_at="))
    )
    assert launched < float(values["python_at"]) < float(values["shown_at"]) < time.time()
    assert (tmp_path / "data" / "runs.db").exists()  # the real console started on its store
