"""`hitl audit verify` and `hitl audit export` on a real SQLite store."""

import asyncio
import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from hitl_desktop.cli import main
from hitl_desktop.engine import Engine, task, wait


@task("audited-cli", audit=True)
async def audited_cli(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


async def _decided(url: str, n: int) -> None:
    async with Engine(url, tasks=[audited_cli], actor="ana") as engine:
        for i in range(n):
            run = await engine.trigger("audited-cli", i)
            waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
            assert waiting.waiting_token_id is not None
            await engine.complete_token(waiting.waiting_token_id, {"approve": i})
            await engine.wait_for(run.id, ["COMPLETED"], timeout=10)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    asyncio.run(_decided(f"sqlite:///{path}", 3))
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_says_the_chain_is_intact(store: Path, capsys):
    code, out, _ = _run(capsys, "audit", "verify", "--store", str(store))
    assert code == 0 and out.startswith("audit trail intact: 6 entries, head ")
    code, out, _ = _run(capsys, "audit", "verify", "--store", str(store), "--json")
    doc = json.loads(out)
    assert (code, doc["intact"], doc["entries"]) == (0, True, 6)


def test_verify_names_the_first_entry_that_was_changed(store: Path, capsys):
    with sqlite3.connect(store) as raw:
        raw.execute("UPDATE hitl_audit SET data = '{\"approve\":9}' WHERE id = 3")
    code, out, _ = _run(capsys, "audit", "verify", "--store", str(store))
    assert code == 1
    assert out.startswith("audit trail broken at entry 3: its content does not match its hash")
    assert "(2 entries before it match)" in out


def test_export_as_jsonl_and_csv(store: Path, capsys):
    code, out, _ = _run(capsys, "audit", "export", "--store", str(store))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["kind"] for e in lines] == ["TokenCompleted", "RunCompleted"] * 3
    assert lines[0]["data"] == {"approve": 0} and lines[0]["actor"] == "ana"
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    code, out, _ = _run(capsys, "audit", "export", "--store", str(store), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 6 and rows[0]["data"] == '{"approve":0}'
    assert list(rows[0]) == ["id", "at", "actor", "kind", "run_id", "token_id", "data",
                             "prev_hash", "hash"]  # fmt: skip


def test_export_since_a_date(store: Path, capsys):
    code, out, _ = _run(capsys, "audit", "export", "--store", str(store), "--since", "2999-01-01")
    assert (code, out) == (0, "\n")
    code, _, err = _run(capsys, "audit", "export", "--store", str(store), "--since", "yesterday")
    assert code == 2 and "--since 'yesterday' is not a date" in err
