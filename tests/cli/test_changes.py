"""`hitl demo-db`, `profile`, `request`, `approve`, `reject` on real SQLite files, and their
exit statuses.

In-process calls to `main([...])`, plus one case where a console-like engine in another process
executes runs, so `approve` leaves the run to it and only reports the outcome.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.cli import CONFLICT, EXPIRED, INVALID_EDIT, RUN_FAILED, USAGE, main


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HITL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HITL_STORE", raising=False)
    monkeypatch.delenv("HITL_TARGET", raising=False)


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
    doc = run_json(
        capsys, "profile", "add", "shop", "--target", str(path), "--deny", "customers.password_hash"
    )
    assert doc["profile"]["target"] == f"sqlite:///{path}"
    return path


def request(capsys: pytest.CaptureFixture[str], text: str, *more: str) -> Any:
    return run_json(capsys, "request", text, "--profile", "shop", *more)


def test_request_then_approve_writes_once(target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = request(capsys, "Refund $20 on invoice 1042")
    assert doc["run"]["status"] == "WAITING"
    assert doc["run"]["payload"]["profile"] == "shop" and "target" not in doc["run"]["payload"]
    assert doc["review"]["summary"] == "Refund $20.00 on invoice INV-001042"
    token = doc["token_id"]
    assert refunds(target) == []
    code = main(["approve", token, "--comment", "checked", "--reviewer", "ana"])
    out, _ = capsys.readouterr()
    assert code == 0 and out.startswith("applied: ") and "finished here" in out
    assert refunds(target) == [(20, "pending")]
    code, err = fail(capsys, "approve", token)
    # The engine's words: who the store says decided (the OS account here, not --reviewer).
    assert (
        code == 1
        and f"token {token} is already COMPLETED (decided by {getpass.getuser()} at " in err
    )
    assert err.rstrip().endswith("UTC); nothing was changed")
    assert refunds(target) == [(20, "pending")]


def test_reject_and_edits(target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = request(capsys, "Refund $20 on invoice 1042")
    doc = run_json(capsys, "reject", first["token_id"], "--reason", "duplicate ticket")
    assert doc["outcome"]["outcome"] == "rejected"
    assert doc["outcome"]["comment"] == "duplicate ticket"
    second = request(capsys, "Refund $20 on invoice 1042")
    token = second["token_id"]
    code, err = fail(capsys, "approve", token, "--edit", "[1]")
    assert code == USAGE and "index" in err
    # Edits that would not apply are refused before the token completes: the run still waits.
    for edit, expected in [
        ('{"0": {"amount": "lots"}}', "amount"),
        ('{"0": {"amount": ["15.00"]}}', "amount"),
        ('{"3": {"amount": "1.00"}}', "no change 3"),
        ('{"0": {"colour": "red"}}', "colour"),
    ]:
        code, err = fail(capsys, "approve", token, "--edit", edit)
        assert code == INVALID_EDIT and expected in err and "still waits" in err, err
        assert run_json(capsys, "show", second["run"]["id"])["run"]["status"] == "WAITING"
    doc = run_json(capsys, "approve", token, "--edit", '{"0": {"amount": "12.5"}}')
    assert doc["outcome"]["outcome"] == "applied"
    assert refunds(target) == [(12.5, "pending")]


def test_errors_name_the_problem(
    target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = fail(capsys, "request", "Refund $20 on invoice 1042")
    assert code == USAGE and "no target profile 'default'" in err and "shop" in err
    code, err = fail(capsys, "request", "x", "--profile", "payroll")
    assert code == USAGE and "no target profile 'payroll'" in err
    _, err = fail(capsys, "profile", "add", "gone", "--target", str(tmp_path / "missing.db"))
    assert "was not saved" in err
    assert not (tmp_path / "missing.db").exists()
    _, err = fail(capsys, "profile", "add", "pw", "--target", "postgresql://u:hunter2@h/db")
    assert "holds a password" in err and "hunter2" not in err
    _, err = fail(capsys, "profile", "add", "typo", "--target", str(target), "--deny", "custmers")
    assert "custmers" in err and "was not saved" in err
    code, err = fail(capsys, "request", "Please buy a pony", "--profile", "shop")
    assert code == RUN_FAILED and "does not understand" in err and "Refund $AMOUNT" in err
    _, err = fail(
        capsys, "request", "Refund $1 on invoice 1042", "--profile", "shop", "--timeout", "soon"
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
    from hitl_desktop.agent import Targets, db_change_task
    from hitl_desktop.config import load_settings
    from hitl_desktop.engine import Engine

    async def main():
        targets = Targets(load_settings().target_profiles())
        engine = Engine(sys.argv[1], tasks=[db_change_task(targets)], heartbeat_interval=0.2)
        await engine.start()
        print("ready", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_a_running_console_finishes_the_run(
    target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = request(capsys, "Void invoice 4854")
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


def test_exit_statuses_say_how_the_run_ended(
    target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # conflict: the row changed since the proposal
    doc = request(capsys, "Mark invoice 4854 as paid")
    with sqlite3.connect(target) as conn:
        conn.execute("update invoices set status='void' where id=4854")
    code = main(["approve", doc["token_id"]])
    out, _ = capsys.readouterr()
    assert code == CONFLICT and out.startswith("conflict: ")
    # failed: the profile is gone by the time the run resumes
    doc = request(capsys, "Cancel the subscription of customer 58")
    run_json(capsys, "profile", "remove", "shop")
    code, err = fail(capsys, "approve", doc["token_id"])
    assert code == RUN_FAILED and "no target profile 'shop'" in err


def test_an_expired_token_cannot_be_approved(
    target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = request(capsys, "Refund $20 on invoice 1042", "--timeout", "1s")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # no engine runs meanwhile to time it out
        time.sleep(0.2)
        if time.time() > _expires(capsys, doc["token_id"]):
            break
    code, err = fail(capsys, "approve", doc["token_id"])
    assert code == EXPIRED and "expired" in err
    assert refunds(target) == []


def _expires(capsys: pytest.CaptureFixture[str], token_id: str) -> float:
    from datetime import datetime

    tokens = run_json(capsys, "tokens")["tokens"]
    found = next(t for t in tokens if t["id"] == token_id)
    return datetime.fromisoformat(found["expires_at"]).timestamp() + 0.05


def test_a_review_is_decided_with_approve_or_reject_not_complete(
    target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = request(capsys, "Void invoice 4854")
    for data in ('{"approved": true}', '{"decision": "reject", "reviewer": "ana"}'):
        code, err = fail(capsys, "complete", doc["token_id"], "--data", data)
        assert code == USAGE and "decided with hitl approve/reject" in err
    assert run_json(capsys, "show", doc["run"]["id"])["run"]["status"] == "WAITING"
    assert run_json(capsys, "reject", doc["token_id"])["outcome"]["outcome"] == "rejected"


def test_runs_stored_with_a_password_in_their_payload_print_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from hitl_desktop.engine import Engine, RunContext, task

    store = f"sqlite:///{tmp_path / 'legacy.db'}"

    async def earlier_version(ctx: RunContext, payload: Any) -> None:
        raise AssertionError("never executed: the run stays queued")

    async def plant() -> str:
        engine = Engine(store, tasks=[task("db-change")(earlier_version)])
        await engine.open()
        legacy = {"request": "x", "target": "postgresql://app:hunter2@db/shop"}
        run = await engine.trigger("db-change", legacy)
        await engine.stop()
        return run.id

    run_id = asyncio.run(plant())
    for argv in (["show", run_id], ["runs", "--json"], ["show", run_id, "--json"]):
        assert main([*argv, "--store", store]) == 0
        out, _ = capsys.readouterr()
        assert "hunter2" not in out and "postgresql://app:***@db/shop" in out


def test_text_that_is_not_unicode_is_refused_before_the_store(
    target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = request(capsys, "Refund $20 on invoice 1042")
    token = doc["token_id"]
    for argv, where in [
        (["approve", token, "--edit", '{"0": {"note": "\\ud800"}}'], "--edit"),
        (["approve", token, "--comment", "ok\udcff"], "--comment"),
        (["complete", token, "--data", '{"decision": "reject", "reviewer": "\\udc80"}'], "--data"),
    ]:
        code, err = fail(capsys, *argv)
        assert code == USAGE and where in err and "not valid Unicode" in err, err
        assert "cannot use the store" not in err
    assert run_json(capsys, "show", doc["run"]["id"])["run"]["status"] == "WAITING"


def test_a_profiles_password_is_read_from_stdin_into_the_keyring_only(
    target: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    memory_keyring: Any,
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-Pa55\n"))
    run_json(capsys, "profile", "add", "pw", "--target", str(target), "--password-stdin")
    assert memory_keyring.entries[("hitl-desktop", "db-password:pw")] == "s3cret-Pa55"
    listed = run_json(capsys, "profile", "list")
    assert {p["name"]: p["password"] for p in listed["profiles"]}["pw"] == "in the keyring"
    run_json(capsys, "profile", "remove", "pw")
    assert ("hitl-desktop", "db-password:pw") not in memory_keyring.entries
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"s3cret-Pa55" not in path.read_bytes(), path


def test_the_demo_databases_hint_works_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shlex

    assert main(["demo-db", str(tmp_path / "shop.db")]) == 0
    out, _ = capsys.readouterr()
    hint = out.split("use it with: ", 1)[1].strip()
    add, request = hint.split(", then ")
    assert main(shlex.split(add.replace("NAME", "shop"))[1:]) == 0
    argv = shlex.split(request.replace("NAME", "shop").replace("TEXT", "'Void invoice 4854'"))
    assert main([*argv[1:], "--json"]) == 0
    out, _ = capsys.readouterr()
    assert '"status": "WAITING"' in out
