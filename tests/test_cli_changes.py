"""`hitl demo-db`, `request`, `approve` and `reject` on real SQLite files.

In-process calls to `main([...])`, plus one case where a console-like engine in another process
executes runs, so `approve` leaves the run to it and only reports the outcome.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.agent.db_change import close_targets
from hitl_desktop.cli import main


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HITL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HITL_STORE", raising=False)
    monkeypatch.delenv("HITL_TARGET", raising=False)
    yield
    close_targets()


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def fail(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert err.startswith("hitl: error: ") and err.count("\n") == 1
    return code, err


def refunds(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("select amount, status from refunds where invoice_id=1042").fetchall()


@pytest.fixture
def target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "target.db"
    doc = run_json(capsys, "demo-db", str(path))
    assert doc["path"] == str(path) and path.is_file()
    return path


def test_request_then_approve_writes_once(target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "request", "Refund $20 on invoice 1042", "--target", str(target))
    assert doc["run"]["status"] == "WAITING"
    assert doc["review"]["summary"] == "Refund $20.00 on invoice INV-001042"
    token = doc["token_id"]
    assert refunds(target) == []
    code = main(["approve", token, "--comment", "checked", "--reviewer", "ana"])
    out, _ = capsys.readouterr()
    assert code == 0 and out.startswith("applied: ") and "finished here" in out
    assert refunds(target) == [(20, "pending")]
    code, err = fail(capsys, "approve", token)
    assert "already decided or expired" in err
    assert refunds(target) == [(20, "pending")]


def test_reject_and_edits(target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "request", "Refund $20 on invoice 1042", "--target", str(target))
    doc = run_json(capsys, "reject", first["token_id"], "--reason", "duplicate ticket")
    assert doc["outcome"]["outcome"] == "rejected"
    assert doc["outcome"]["comment"] == "duplicate ticket"
    second = run_json(capsys, "request", "Refund $20 on invoice 1042", "--target", str(target))
    code, err = fail(capsys, "approve", second["token_id"], "--edit", "[1]")
    assert code == 2 and "index" in err
    doc = run_json(capsys, "approve", second["token_id"], "--edit", '{"0": {"amount": "12.5"}}')
    assert doc["outcome"]["outcome"] == "applied"
    assert refunds(target) == [(12.5, "pending")]


def test_errors_name_the_problem(
    target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = fail(capsys, "request", "Refund $20 on invoice 1042")
    assert "no target database" in err
    _, err = fail(capsys, "request", "x", "--target", str(tmp_path / "missing.db"))
    assert "no database at" in err
    assert not (tmp_path / "missing.db").exists()
    _, err = fail(capsys, "request", "Please buy a pony", "--target", str(target))
    assert "does not understand" in err and "Refund $AMOUNT" in err
    _, err = fail(
        capsys, "request", "Refund $1 on invoice 1042", "--target", str(target), "--timeout", "soon"
    )
    assert "timeout" in err
    _, err = fail(capsys, "demo-db", str(target))
    assert "exists" in err
    _, err = fail(capsys, "approve", "tok_nope")
    assert "tok_nope" in err
    _, err = fail(capsys, "runs", "--store", str(target))  # the target is not a store
    assert "another application's database" in err and "customers" in err


CONSOLE = textwrap.dedent(
    """
    import asyncio, sys
    from hitl_desktop.agent.db_change import db_change
    from hitl_desktop.engine import Engine

    async def main():
        engine = Engine(sys.argv[1], tasks=[db_change], heartbeat_interval=0.2)
        await engine.start()
        print("ready", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_a_running_console_finishes_the_run(
    target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = run_json(capsys, "request", "Void invoice 4854", "--target", str(target))
    store = f"sqlite:///{tmp_path / 'data' / 'runs.db'}"
    console = subprocess.Popen(
        [sys.executable, "-c", CONSOLE, store], stdout=subprocess.PIPE, text=True
    )
    try:
        assert console.stdout is not None and console.stdout.readline() == "ready\n"
        started = time.monotonic()
        code = main(["approve", doc["token_id"]])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "finished by the running console" in out
        assert time.monotonic() - started < 30
    finally:
        console.kill()
        console.wait(10)
    with sqlite3.connect(target) as conn:
        assert conn.execute("select status from invoices where id=4854").fetchall() == [("void",)]
