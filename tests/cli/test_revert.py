"""`hitl revert` and what `hitl show` says of reverts, on real SQLite files (in-process `main`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.cli import CONFLICT, FAILURE, main


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


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "target.db"
    run_json(capsys, "demo-db", str(path))
    run_json(capsys, "profile", "add", "shop", "--target", str(path))
    return path


def applied(capsys: pytest.CaptureFixture[str], text: str) -> str:
    doc = run_json(capsys, "request", text, "--profile", "shop")
    run_json(capsys, "approve", doc["token_id"], "--reviewer", "ana")
    return str(doc["run"]["id"])


def test_revert_prints_the_new_run_then_approving_it_restores_the_rows(
    target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = rows(target, "select * from subscriptions order by id")
    run_id = applied(capsys, "Move customer 17 to the annual plan")
    assert rows(target, "select * from subscriptions order by id") != before

    assert main(["revert", run_id]) == 0
    out, _ = capsys.readouterr()
    revert_id = out.splitlines()[0]
    assert revert_id.startswith("run_") and f"of run {run_id} is WAITING" in out
    assert "~ subscriptions (id=20): plan_id: 4 -> 3" in out
    shown = run_json(capsys, "show", revert_id)
    assert shown["run"]["payload"]["reverts"] == run_id
    assert shown["revert"]["reverts"] == run_id
    token = shown["run"]["waiting_token_id"]
    run_json(capsys, "approve", token, "--reviewer", "bo")
    assert rows(target, "select * from subscriptions order by id") == before

    shown = run_json(capsys, "show", run_id)
    assert shown["revert"] == {
        "reverts": None,
        "reverted_by": [revert_id],
        "reverted": revert_id,
        "revertible": False,
    }
    assert main(["show", run_id]) == 0
    out, _ = capsys.readouterr()
    assert f"reverted by run {revert_id}" in out
    assert f"not revertible: run {run_id} was already reverted by run {revert_id}" in out
    assert main(["audit", "export", "--format", "jsonl"]) == 0
    out, _ = capsys.readouterr()
    entries = [json.loads(line) for line in out.splitlines()]
    requested = [e for e in entries if e["kind"] == "RevertRequested"]
    assert [(e["run_id"], e["data"]["run"]) for e in requested] == [(run_id, revert_id)]
    assert main(["revert", run_id]) == FAILURE
    _, err = capsys.readouterr()
    assert err == (
        f"hitl: error: run {run_id} was already reverted by run {revert_id}; nothing was started\n"
    )


def test_revert_json_and_refusals(target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    waiting = run_json(capsys, "request", "Delete refund 12", "--profile", "shop")
    assert main(["revert", waiting["run"]["id"]]) == FAILURE
    _, err = capsys.readouterr()
    assert "is WAITING: only an applied change can be reverted; nothing was started" in err
    assert main(["revert", "run_nope"]) == FAILURE
    _, err = capsys.readouterr()
    assert "run_nope" in err

    run_json(capsys, "approve", waiting["token_id"])
    doc = run_json(capsys, "revert", waiting["run"]["id"], "--timeout", "1h")
    assert doc["reverts"] == waiting["run"]["id"] and doc["run"]["status"] == "WAITING"
    assert doc["review"]["diffs"][0]["op"] == "insert"
    assert doc["run"]["payload"]["timeout"] == "1h"
    assert main(["revert", waiting["run"]["id"]]) == FAILURE
    _, err = capsys.readouterr()
    assert f"still WAITING: run {doc['run_id']}" in err


def test_a_revert_of_a_row_changed_since_exits_conflict(
    target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = applied(capsys, "Refund $20 on invoice 1042")
    with sqlite3.connect(target) as conn:
        conn.execute("update refunds set status='succeeded' where invoice_id=1042")
    assert main(["revert", run_id]) == CONFLICT
    out, _ = capsys.readouterr()
    assert "conflict: nothing was written: refunds" in out
    assert f"changed since run {run_id} applied it (status 'pending' → 'succeeded')" in out
    assert rows(target, "select status from refunds where invoice_id=1042") == [("succeeded",)]
