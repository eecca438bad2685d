"""`hitl request`, `approve`, `reject` and `show` on a change set (real SQLite files): each part
with its token and diff lines, a part's decision while the others wait, and `--apply each`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.agent import DEMO_CHANGE_SET
from hitl_desktop.cli import main

from .test_changes import isolated, request, run_json, target

__all__ = ["isolated", "target"]  # the fixtures this module uses from test_changes


def written(path: Path) -> tuple[list[Any], list[Any]]:
    with sqlite3.connect(path) as conn:
        refunds = conn.execute("select amount from refunds where invoice_id = 1042").fetchall()
        invoice = conn.execute("select status from invoices where id = 4854").fetchall()
    return refunds, invoice


def text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_a_change_set_is_requested_decided_part_by_part_and_shown(
    target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = text(capsys, "request", DEMO_CHANGE_SET, "--profile", "shop")
    assert "change set of 2 parts, written together, in one transaction" in out
    assert "part 1 of 2 'Refund $20 on invoice 1042': waiting" in out
    assert "part 2 of 2 'Mark invoice 4854 as paid': waiting" in out
    assert "+ refunds (new row): invoice_id=1042, amount=20.00" in out
    assert "~ invoices (id=4854): status: open -> paid" in out
    runs = run_json(capsys, "runs")["runs"]
    run_id = runs[0]["id"]
    doc = run_json(capsys, "show", run_id)
    first, second = doc["parts"]
    assert doc["apply"] == "all" and first["token_id"] in out and second["token_id"] in out
    assert f"part 1: approve: hitl approve {first['token_id']}" in out

    out = text(capsys, "approve", second["token_id"], "--reviewer", "ana")
    assert out.startswith(
        "part 2 of 2 approved; waiting for part 1 'Refund $20 on invoice 1042' "
        f"(token {first['token_id']})"
    )
    assert written(target) == ([], [("open",)])  # nothing until every part is approved
    shown = text(capsys, "show", run_id)
    assert "part 1 of 2 'Refund $20 on invoice 1042': waiting" in shown
    assert "part 2 of 2 'Mark invoice 4854 as paid': approved by" in shown

    out = text(capsys, "approve", first["token_id"], "--reviewer", "bob")
    assert out.startswith("applied: applied the change set's 2 parts together (2 row change(s))")
    assert written(target) == ([(20,)], [("paid",)])
    parts = run_json(capsys, "show", run_id)["parts"]
    assert [p["status"] for p in parts] == ["applied", "applied"]


def test_a_rejected_part_rejects_the_set(target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = request(capsys, DEMO_CHANGE_SET)
    assert doc["token_id"] is None  # the run waits on its parts' tokens, each decided alone
    first, second = doc["parts"]
    out = text(capsys, "reject", first["token_id"], "--reason", "wrong invoice")
    assert out.startswith("part 1 of 2 rejected; waiting for part 2")
    assert "nothing of the change set will be written" in out
    decided = run_json(capsys, "approve", second["token_id"])
    assert decided["outcome"]["outcome"] == "rejected"
    assert [p["outcome"]["outcome"] for p in decided["outcome"]["parts"]] == ["rejected"] * 2
    assert written(target) == ([], [("open",)])


def test_apply_each_writes_an_approved_part_at_once(
    target: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = request(capsys, DEMO_CHANGE_SET, "--apply", "each")
    assert doc["apply"] == "each" and doc["run"]["payload"]["apply"] == "each"
    first, second = doc["parts"]
    out = text(capsys, "approve", second["token_id"])
    assert out.startswith("part 2 of 2 approved and applied; waiting for part 1")
    assert written(target) == ([], [("paid",)])
    decided = run_json(capsys, "reject", first["token_id"])
    assert decided["outcome"]["outcome"] == "applied" and decided["outcome"]["rows"] == 1
    assert written(target) == ([], [("paid",)])
