"""The `hitl` CLI against real SQLite stores: listings, show, complete, and its errors.

Most cases call `main([...])` in-process; a few run the real CLI as a subprocess, which knows
none of the tasks registered here (it needs none: it only reads and completes).
"""

import asyncio
import getpass
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from hitl_desktop.agent import Decision, Edit
from hitl_desktop.cli import main
from hitl_desktop.engine import Engine, RunStatus, TokenStatus, task, wait
from tests import pg

T = TypeVar("T")


def _quote(payload: dict) -> dict:
    return {"amount": payload["n"] * 10}


def _apply(quote: dict, decision: Any) -> dict:
    return {"quote": quote, "decision": decision}


def _decline(_quote: dict) -> None:
    raise RuntimeError("card declined")


@task("cli-demo")
async def cli_demo(ctx, payload):
    quote = await ctx.step("quote", _quote, payload)
    token = await wait.create_token(timeout="1h", tags=payload.get("tags", []))
    result = await wait.for_token(token)
    return await ctx.step("apply", _apply, quote, result.output)


@task("cli-fails")
async def cli_fails(ctx, payload):
    quote = await ctx.step("quote", _quote, payload)
    await ctx.step("charge", _decline, quote)


@dataclass(frozen=True)
class Seeded:
    """A store with runs in known states; runs are listed newest first."""

    url: str
    path: Path
    refund: str  # WAITING, token tagged refund
    vip: str  # WAITING, token tagged refund + vip
    done: str  # COMPLETED with {"approved": true}
    failed: str  # FAILED in step "charge"
    tokens: dict[str, str]  # run id → token id


def on_store(url: str, body: Callable[[Engine], Awaitable[T]]) -> T:
    """Run *body* with an engine that has the store open but executes nothing (as the CLI)."""

    async def go() -> T:
        engine = Engine(url)
        await engine.open()
        try:
            return await body(engine)
        finally:
            await engine.stop()

    return asyncio.run(go())


async def _seed(url: str) -> tuple[list[str], dict[str, str]]:
    runs: list[str] = []
    tokens: dict[str, str] = {}
    async with Engine(url) as engine:
        for n, tags in enumerate([["refund"], ["refund", "vip"], ["other"]]):
            run = await engine.trigger("cli-demo", {"n": n, "tags": tags}, tags=[f"seed-{n}"])
            waiting = await engine.wait_for(run.id)
            assert waiting.status == RunStatus.WAITING
            assert waiting.waiting_token_id is not None
            runs.append(run.id)
            tokens[run.id] = waiting.waiting_token_id
        await engine.complete_token(tokens[runs[2]], {"approved": True})
        assert (await engine.wait_for(runs[2])).status == RunStatus.COMPLETED
        failed = await engine.trigger("cli-fails", {"n": 7})
        assert (await engine.wait_for(failed.id)).status == RunStatus.FAILED
        runs.append(failed.id)
    return runs, tokens


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    runs, tokens = asyncio.run(_seed(url))
    return Seeded(url, path, runs[0], runs[1], runs[2], runs[3], tokens)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The subprocess's environment: its default data directory is a temp dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_STORE", "HITL_DATA_DIR")}
    env["HITL_DATA_DIR"] = str(tmp_path / "default-data")
    return env


def run_cli(env: dict[str, str], *argv: str, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "hitl_desktop.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )


def hitl(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `hitl *argv* in-process; it must succeed. Returns stdout."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert_store_closed()
    return out


def hitl_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    return json.loads(hitl(capsys, *argv, "--json"))


def fails(capsys: pytest.CaptureFixture[str], code: int, *argv: str) -> str:
    """Run `hitl *argv* in-process; it must fail with *code* and one error line. Returns it."""
    assert main(list(argv)) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err)
    assert_store_closed()
    return err


def assert_store_closed() -> None:
    """The CLI stops its engine: the store's thread (and its connection) is gone."""
    assert [t.name for t in threading.enumerate() if t.name == "hitl-store"] == []


def assert_one_error_line(err: str) -> None:
    assert err.startswith("hitl: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err


def table_column(out: str, index: int) -> list[str]:
    """One column of a table printed by the CLI (header first), up to the blank line."""
    lines = out.split("\n\n")[0].splitlines()
    return [line.split()[index] for line in lines]


# ---------------------------------------------------------------- runs


def test_runs_prints_an_aligned_table_newest_first(seeded: Seeded, capsys):
    out = hitl(capsys, "runs", "--store", seeded.url)
    lines = out.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["RUN", "TASK", "STATUS", "CREATED", "TAGS", "WAITING", "ON"]
    assert table_column(out, 0)[1:] == [seeded.failed, seeded.done, seeded.vip, seeded.refund]
    assert table_column(out, 2)[1:] == ["FAILED", "COMPLETED", "WAITING", "WAITING"]
    # Aligned: every column starts at the same offset on every line.
    status_at = lines[0].index("STATUS")
    assert all(line[status_at:].split()[0] in {"STATUS", *RunStatus} for line in lines)
    assert seeded.tokens[seeded.vip] in lines[3]
    assert out.rstrip().endswith("4 runs")


def test_runs_json_is_one_document_with_iso_datetimes(seeded: Seeded, cli_env):
    done = run_cli(cli_env, "runs", "--store", seeded.url, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    runs = json.loads(done.stdout)["runs"]
    assert [r["id"] for r in runs] == [seeded.failed, seeded.done, seeded.vip, seeded.refund]
    by_id = {r["id"]: r for r in runs}
    assert by_id[seeded.done]["output"] == {
        "quote": {"amount": 20},
        "decision": {"approved": True},
    }
    assert by_id[seeded.refund]["payload"] == {"n": 0, "tags": ["refund"]}
    assert by_id[seeded.refund]["tags"] == ["seed-0"]
    assert by_id[seeded.refund]["waiting_token_id"] == seeded.tokens[seeded.refund]
    created = datetime.fromisoformat(by_id[seeded.refund]["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert by_id[seeded.refund]["finished_at"] is None
    assert "is_cached" not in by_id[seeded.refund]


def test_runs_filters_by_status_case_insensitively_and_by_task(seeded: Seeded, capsys):
    waiting = hitl_json(capsys, "runs", "--store", seeded.url, "--status", "waiting")["runs"]
    assert [r["id"] for r in waiting] == [seeded.vip, seeded.refund]
    failed = hitl_json(capsys, "runs", "--store", seeded.url, "--task", "cli-fails")["runs"]
    assert [r["id"] for r in failed] == [seeded.failed]
    out = hitl(capsys, "runs", "--store", seeded.url, "--task", "cli-fails", "--status", "WAITING")
    assert out.strip() == "(no runs)"


def test_runs_limit_says_there_may_be_more(seeded: Seeded, capsys):
    out = hitl(capsys, "runs", "--store", seeded.url, "--limit", "2")
    assert table_column(out, 0)[1:] == [seeded.failed, seeded.done]
    assert "2 runs; there may be more" in out


# ---------------------------------------------------------------- tokens


def test_tokens_filter_by_tags_all_of_which_must_match(seeded: Seeded, capsys):
    url = seeded.url
    refund = hitl_json(capsys, "tokens", "--store", url, "--tag", "refund")["tokens"]
    assert [t["id"] for t in refund] == [seeded.tokens[seeded.vip], seeded.tokens[seeded.refund]]
    both = hitl_json(capsys, "tokens", "--store", url, "--tag", "refund", "--tag", "vip")["tokens"]
    assert [t["id"] for t in both] == [seeded.tokens[seeded.vip]]
    assert both[0]["tags"] == ["refund", "vip"]
    assert both[0]["run_id"] == seeded.vip
    assert datetime.fromisoformat(both[0]["expires_at"]) > datetime.fromisoformat(
        both[0]["created_at"]
    )
    out = hitl(capsys, "tokens", "--store", url, "--tag", "vip")
    assert table_column(out, 0) == ["TOKEN", seeded.tokens[seeded.vip]]
    assert "refund,vip" in out


def test_tokens_filter_by_status_and_by_run(seeded: Seeded, capsys):
    out = hitl(capsys, "tokens", "--store", seeded.url, "--status", "COMPLETED")
    assert table_column(out, 0)[1:] == [seeded.tokens[seeded.done]]
    assert table_column(out, 1)[1:] == ["COMPLETED"]
    waiting = hitl_json(capsys, "tokens", "--store", seeded.url, "--status", "waiting")["tokens"]
    assert {t["id"] for t in waiting} == {seeded.tokens[seeded.vip], seeded.tokens[seeded.refund]}
    mine = hitl_json(capsys, "tokens", "--store", seeded.url, "--run", seeded.refund)["tokens"]
    assert [t["id"] for t in mine] == [seeded.tokens[seeded.refund]]
    none = hitl(capsys, "tokens", "--store", seeded.url, "--run", seeded.failed)
    assert none.strip() == "(no tokens)"


def test_tokens_of_an_unknown_run_is_an_error_not_an_empty_list(seeded: Seeded, capsys):
    err = fails(capsys, 1, "tokens", "--store", seeded.url, "--run", "run_nope")
    assert "no run with id 'run_nope'" in err


# ---------------------------------------------------------------- show


def test_show_prints_the_run_its_payload_output_and_steps_with_durations(seeded: Seeded, capsys):
    out = hitl(capsys, "show", seeded.done, "--store", seeded.url)
    head = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines()[:4])
    assert head == {"run": seeded.done, "task": "cli-demo", "status": "COMPLETED", "tags": "seed-2"}
    sections = {part.splitlines()[0]: part for part in out.split("\n\n")}
    assert json.loads(sections["payload"].split("\n", 1)[1]) == {"n": 2, "tags": ["other"]}
    assert json.loads(sections["output"].split("\n", 1)[1]) == {
        "quote": {"amount": 20},
        "decision": {"approved": True},
    }
    steps = sections["steps (4)"].splitlines()[1:]
    assert [line.split()[1:3] for line in steps[1:]] == [
        ["step", "quote"],
        ["token", "create_token"],
        ["wait", seeded.tokens[seeded.done]],
        ["step", "apply"],
    ]
    took_at = steps[0].index("TOOK")
    assert all(line[took_at:].split()[1] in ("ms", "s") for line in steps[1:])
    assert seeded.tokens[seeded.done] in sections["tokens (1)"]


def test_show_gives_a_wait_the_time_its_token_waited(tmp_path: Path, capsys):
    now = [1_000_000.0]
    url = f"sqlite:///{tmp_path / 'clocked.db'}"

    async def wait_90_seconds() -> str:
        async with Engine(url, clock=lambda: now[0]) as engine:
            run = await engine.trigger("cli-demo", {"n": 1})
            waiting = await engine.wait_for(run.id)
            assert waiting.waiting_token_id is not None
            now[0] += 90
            await engine.complete_token(waiting.waiting_token_id, {"ok": 1})
            await engine.wait_for(run.id, [RunStatus.COMPLETED])
            return run.id

    run_id = asyncio.run(wait_90_seconds())
    out = hitl(capsys, "show", run_id, "--store", url)
    wait_line = next(line for line in out.splitlines() if " wait " in line)
    assert "1m 30s" in wait_line


def test_show_a_waiting_run_names_its_token(seeded: Seeded, capsys):
    out = hitl(capsys, "show", seeded.vip, "--store", seeded.url)
    assert f"WAITING (waiting on token {seeded.tokens[seeded.vip]})" in out
    assert "steps (2)" in out
    assert not [part for part in out.split("\n\n") if part.startswith("output")]


def test_show_a_failed_run_prints_its_error_and_traceback(seeded: Seeded, capsys):
    out = hitl(capsys, "show", seeded.failed, "--store", seeded.url)
    assert "StepFailed: step 'charge' failed after 1 attempt(s): RuntimeError: card declined" in out
    assert "\ntraceback\n  Traceback (most recent call last):" in out
    charge = next(line for line in out.splitlines() if " charge " in line)
    assert charge.split()[3] == "no"
    assert charge.rstrip().endswith("RuntimeError: card declined")


def test_show_json_has_the_run_steps_and_tokens(seeded: Seeded, cli_env):
    done = run_cli(cli_env, "show", seeded.done, "--store", seeded.url, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    doc = json.loads(done.stdout)
    assert doc["run"]["id"] == seeded.done
    assert doc["run"]["status"] == "COMPLETED"
    assert [(s["position"], s["kind"], s["name"]) for s in doc["steps"]] == [
        (0, "step", "quote"),
        (1, "token", "create_token"),
        (2, "wait", seeded.tokens[seeded.done]),
        (3, "step", "apply"),
    ]
    assert doc["steps"][0]["result"] == {"amount": 20}
    assert all(s["duration_s"] >= 0 for s in doc["steps"])
    assert [t["id"] for t in doc["tokens"]] == [seeded.tokens[seeded.done]]
    assert doc["tokens"][0]["output"] == {"approved": True}


async def _decided_by_another(url: str, decider: str, decision: Decision) -> tuple[str, Any]:
    """A cli-demo run requested here, decided by *decider* through an engine of its own that
    executes nothing (another reviewer's console); returns the run id and the decided token."""
    async with Engine(url, tasks=[cli_demo]) as engine:
        run = await engine.trigger("cli-demo", {"n": 1})
        waiting = await engine.wait_for(run.id)
        assert waiting.waiting_token_id is not None
        other = Engine(url, actor=decider, execute=False)
        try:
            await other.open()
            token = await other.complete_token(waiting.waiting_token_id, decision.to_json())
        finally:
            await other.stop()
        await engine.wait_for(run.id, [RunStatus.COMPLETED], timeout=10)
    return run.id, token


def test_show_says_who_requested_and_who_decided_with_the_display_name_beside(
    seeded: Seeded, capsys
):
    decision = Decision(True, "Ana Lima", "checked", (Edit(0, {"amount": "15.00"}),))
    run_id, token = asyncio.run(_decided_by_another(seeded.url, "ana", decision))
    assert token.completed_by == "ana" and token.completed_at is not None
    out = hitl(capsys, "show", run_id, "--store", seeded.url)
    head = dict(line.split("  ", 1) for line in out.split("\n\n")[0].splitlines())
    assert head["requested by"].strip() == getpass.getuser()
    # A cli-demo run has no proposal to read the proposed values from: the change is numbered.
    assert head["decided"].strip() == (
        f"Approved by ana at {token.completed_at.astimezone():%Y-%m-%d %H:%M:%S} "
        "(display name “Ana Lima”) — comment: checked — edits: change 0: amount → 15.00"
    )
    doc = hitl_json(capsys, "show", run_id, "--store", seeded.url)
    assert (doc["requested_by"], doc["decided_by"]) == (getpass.getuser(), "ana")
    decided_at = datetime.fromisoformat(doc["decided_at"])
    assert decided_at.utcoffset() == timedelta(0) and decided_at == token.completed_at


def test_show_a_run_nobody_decided_yet(seeded: Seeded, capsys):
    out = hitl(capsys, "show", seeded.vip, "--store", seeded.url)
    head = dict(line.split("  ", 1) for line in out.split("\n\n")[0].splitlines())
    assert head["decided"].strip() == "-"
    assert head["requested by"].strip() == getpass.getuser()
    doc = hitl_json(capsys, "show", seeded.vip, "--store", seeded.url)
    assert (doc["decided_by"], doc["decided_at"]) == (None, None)
    assert doc["requested_by"] == getpass.getuser()


@pytest.fixture
def reviewer_role():
    """A PostgreSQL store made by its owner, and a reviewer role allowed to use it."""
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_show")
    role = f"ana_{uuid.uuid4().hex[:8]}"
    pg.admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield url, role
    finally:
        pg.drop_database(name)
        pg.admin(f'DROP ROLE "{role}"')


def test_show_on_postgresql_names_the_role_the_server_saw_not_the_name_typed(reviewer_role, capsys):
    url, role = reviewer_role
    on_store(url, lambda engine: engine.count_runs())  # the owner creates the schema
    grants = [
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
    ]
    db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with db.begin() as conn:
        for grant in grants:
            conn.execute(sa.text(grant))
    db.dispose()

    async def decide() -> tuple[str, Any]:
        async with Engine(url, tasks=[cli_demo]) as engine:
            run = await engine.trigger("cli-demo", {"n": 1})
            waiting = await engine.wait_for(run.id)
            assert waiting.waiting_token_id is not None
            # The reviewer's console claims to be "mallory" and types "Ana Lima".
            reviewer = Engine(url.replace("postgres@", f"{role}@"), actor="mallory", execute=False)
            try:
                await reviewer.open()
                token = await reviewer.complete_token(
                    waiting.waiting_token_id, Decision(False, "Ana Lima", "duplicate").to_json()
                )
            finally:
                await reviewer.stop()
            await engine.wait_for(run.id, [RunStatus.COMPLETED], timeout=10)
        return run.id, token

    run_id, token = asyncio.run(decide())
    doc = hitl_json(capsys, "show", run_id, "--store", url)
    assert (doc["decided_by"], doc["requested_by"]) == (role, "postgres")
    assert datetime.fromisoformat(doc["decided_at"]) == token.completed_at
    out = hitl(capsys, "show", run_id, "--store", url)
    assert (
        f"Rejected by {role} at " in out and "(display name “Ana Lima”) — comment: duplicate" in out
    )
    assert "mallory" not in out


def test_show_an_unknown_run(seeded: Seeded, capsys):
    err = fails(capsys, 1, "show", "run_nope", "--store", seeded.url)
    assert err == "hitl: error: no run with id 'run_nope'\n"


# ---------------------------------------------------------------- complete


def test_complete_completes_the_token_and_queues_the_run_for_the_console(seeded: Seeded, cli_env):
    token_id = seeded.tokens[seeded.refund]
    done = run_cli(
        cli_env, "complete", token_id, "--store", seeded.url, "--data", '{"approved": true}'
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert f"completed token {token_id}" in done.stdout
    assert f"run {seeded.refund} is QUEUED" in done.stdout

    async def read(engine: Engine):
        return await engine.get_token(token_id), await engine.get_run(seeded.refund)

    token, run = on_store(seeded.url, read)
    assert token.status == TokenStatus.COMPLETED
    assert token.output == {"approved": True}
    assert run.status == RunStatus.QUEUED  # nothing in the CLI process executes runs

    async def resume() -> Any:  # the console starting later picks it up
        async with Engine(seeded.url) as engine:
            return await engine.wait_for(seeded.refund, [RunStatus.COMPLETED], timeout=10)

    finished = asyncio.run(resume())
    assert finished.output == {"quote": {"amount": 0}, "decision": {"approved": True}}


def test_complete_json_reports_the_token_and_its_run(seeded: Seeded, capsys):
    token_id = seeded.tokens[seeded.vip]
    doc = hitl_json(capsys, "complete", token_id, "--store", seeded.url, "--data", "[1, 2]")
    assert doc["token"]["id"] == token_id
    assert doc["token"]["status"] == "COMPLETED"
    assert doc["token"]["output"] == [1, 2]
    assert datetime.fromisoformat(doc["token"]["completed_at"]).tzinfo is not None
    assert doc["run"]["id"] == seeded.vip
    assert doc["run"]["status"] == "QUEUED"


def test_completing_twice_fails_and_changes_nothing(seeded: Seeded, capsys, cli_env):
    token_id = seeded.tokens[seeded.refund]
    hitl(capsys, "complete", token_id, "--store", seeded.url, "--data", '{"first": 1}')
    again = run_cli(cli_env, "complete", token_id, "--store", seeded.url, "--data", '{"n": 2}')
    assert (again.returncode, again.stdout) == (1, "")
    decided = on_store(seeded.url, lambda e: e.get_token(token_id))
    assert decided.completed_by == getpass.getuser() and decided.completed_at is not None
    assert again.stderr == (
        f"hitl: error: token {token_id} is already COMPLETED (decided by "
        f"{decided.completed_by} at {decided.completed_at:%Y-%m-%d %H:%M} UTC); "
        "nothing was changed\n"
    )

    token = on_store(seeded.url, lambda e: e.get_token(token_id))
    assert token.output == {"first": 1}


def test_completing_a_token_whose_run_finished_fails(seeded: Seeded, capsys):
    err = fails(
        capsys, 1, "complete", seeded.tokens[seeded.done], "--store", seeded.url, "--data", "{}"
    )
    assert "is already COMPLETED" in err


def test_complete_an_unknown_token(seeded: Seeded, capsys):
    err = fails(capsys, 1, "complete", "tok_nope", "--store", seeded.url, "--data", "{}")
    assert err == "hitl: error: no token with id 'tok_nope'\n"


@pytest.mark.parametrize("data", ["{approved: true}", "", "NaN", '{"a": Infinity}', "{} {}"])
def test_complete_with_bad_json_is_a_usage_error_and_changes_nothing(
    seeded: Seeded, capsys, data: str
):
    token_id = seeded.tokens[seeded.refund]
    err = fails(capsys, 2, "complete", token_id, "--store", seeded.url, "--data", data)
    assert err.startswith("hitl: error: --data is not valid JSON: ")
    token = on_store(seeded.url, lambda e: e.get_token(token_id))
    assert token.status == TokenStatus.WAITING


def test_complete_needs_data(seeded: Seeded, capsys):
    err = fails(capsys, 2, "complete", seeded.tokens[seeded.refund], "--store", seeded.url)
    assert "--data" in err


def test_complete_reads_data_from_stdin(seeded: Seeded, cli_env):
    token_id = seeded.tokens[seeded.vip]
    done = run_cli(
        cli_env,
        "complete",
        token_id,
        "--store",
        seeded.url,
        "--data",
        "-",
        stdin='{"via": "stdin"}',
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert on_store(seeded.url, lambda e: e.get_token(token_id)).output == {"via": "stdin"}


def test_complete_reads_data_from_a_file(seeded: Seeded, capsys, tmp_path: Path):
    token_id = seeded.tokens[seeded.vip]
    decision = tmp_path / "decision.json"
    decision.write_text('{"reviewer": "ana", "note": "ok ✓"}', encoding="utf-8")
    hitl(capsys, "complete", token_id, "--store", seeded.url, "--data", f"@{decision}")
    token = on_store(seeded.url, lambda e: e.get_token(token_id))
    assert token.output == {"reviewer": "ana", "note": "ok ✓"}
    err = fails(capsys, 2, "complete", token_id, "--store", seeded.url, "--data", "@/no/such.json")
    assert "cannot read --data file" in err


async def test_a_running_console_resumes_the_run_the_cli_completed(tmp_path: Path, cli_env):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    async with Engine(url) as engine:
        run = await engine.trigger("cli-demo", {"n": 4})
        waiting = await engine.wait_for(run.id)
        assert waiting.waiting_token_id is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hitl_desktop.cli", "complete", waiting.waiting_token_id,
            "--store", url, "--data", '{"approved": false}',
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cli_env,
        )  # fmt: skip
        _, err = await proc.communicate()
        assert (proc.returncode, err) == (0, b""), err
        finished = await engine.wait_for(run.id, [RunStatus.COMPLETED], timeout=10)
    assert finished.output == {"quote": {"amount": 40}, "decision": {"approved": False}}


# ---------------------------------------------------------------- usage and store errors


@pytest.mark.parametrize(
    ("argv", "noun", "valid"),
    [
        (["runs", "--status", "DONE"], "run", [s.value for s in RunStatus]),
        (["tokens", "--status", "EXPIRED"], "token", [s.value for s in TokenStatus]),
    ],
)
def test_a_bad_status_lists_the_valid_ones(
    seeded: Seeded, capsys, argv: list[str], noun: str, valid: list[str]
):
    err = fails(capsys, 2, *argv, "--store", seeded.url)
    assert f"unknown {noun} status {argv[-1]!r} (valid: {', '.join(valid)})" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["runs", "--limit", "0"],
        ["runs", "--limit", "many"],
        ["show"],
        ["runs", "--store", ""],
        ["tokens", "--nope"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(capsys, argv: list[str]):
    fails(capsys, 2, *argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["tokens"],
        ["show", "run_x"],
        ["complete", "tok_x", "--data", "{}"],
    ],
)
def test_a_store_in_a_missing_directory_is_an_error_and_is_not_created(
    tmp_path: Path, capsys, argv: list[str]
):
    missing = tmp_path / "no" / "such" / "dir" / "runs.db"
    err = fails(capsys, 1, *argv, "--store", f"sqlite:///{missing}")
    assert err.startswith(f"hitl: error: no store at {missing}")
    assert not (tmp_path / "no").exists()


def test_a_missing_store_file_in_an_existing_directory_is_not_created(tmp_path: Path, cli_env):
    done = run_cli(cli_env, "runs", "--store", str(tmp_path / "typo.db"))
    assert done.returncode == 1
    assert_one_error_line(done.stderr)
    assert "no store at" in done.stderr
    assert not (tmp_path / "typo.db").exists()


def test_a_file_that_is_not_a_store(tmp_path: Path, capsys):
    junk = tmp_path / "notes.db"
    junk.write_text("not a database, just notes\n" * 100)
    err = fails(capsys, 1, "runs", "--store", str(junk))
    assert "file is not a database" in err


def test_an_unreachable_database_server(capsys):
    # Nothing listens on port 1: the connection is refused at once.
    err = fails(capsys, 1, "runs", "--store", "postgresql://ana:s3cret@127.0.0.1:1/hitl")
    assert err.startswith(
        "hitl: error: cannot reach the database server 127.0.0.1:1 of "
        "postgresql://ana:***@127.0.0.1:1/hitl"
    )
    assert "s3cret" not in err


def test_the_default_store_is_runs_db_in_the_data_directory(tmp_path: Path, cli_env):
    data = tmp_path / "default-data"
    data.mkdir()
    url = f"sqlite:///{data / 'runs.db'}"
    runs, _ = asyncio.run(_seed(url))
    done = run_cli(cli_env, "runs", "--json")  # HITL_DATA_DIR points at data
    assert (done.returncode, done.stderr) == (0, "")
    assert [r["id"] for r in json.loads(done.stdout)["runs"]] == runs[::-1]

    other = tmp_path / "other.db"
    asyncio.run(_seed(f"sqlite:///{other}"))
    via_env = run_cli({**cli_env, "HITL_STORE": str(other)}, "runs", "--json")
    assert via_env.returncode == 0
    assert len(json.loads(via_env.stdout)["runs"]) == 4
    assert not {r["id"] for r in json.loads(via_env.stdout)["runs"]} & set(runs)


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "complete" in capsys.readouterr().out
