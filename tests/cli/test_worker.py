"""`hitl worker` as real processes on real stores (a SQLite file, a PostgreSQL database): it
executes runs another process triggers, logs their transitions, hands its runs back on SIGTERM
or Ctrl-C, is taken over when killed, and shares a store with other workers, each run executed
once.

The runs are the built-in db-change task on the demo target, with this machine's profiles (a
temp config dir). To catch a worker mid-step, a profile proposes through a scripted model
server on 127.0.0.1 that holds its first answer back.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitl_desktop.agent import Targets, db_change_task, request_change
from hitl_desktop.application import change_request
from hitl_desktop.cli import main
from hitl_desktop.config import load_settings
from hitl_desktop.engine import Engine, Run, RunStatus
from tests import pg
from tests.agent.helpers import REFUND, seen
from tests.agent.openai_server import OpenAIServer, answer, delayed, tool_calls
from tests.shop import shop

__all__ = ["shop"]  # the fixture this module uses from tests.shop

WAIT = 60.0
"""Longest wait for anything a worker does (it starts in a second or two)."""
APPROVE = {"decision": "approve", "reviewer": "ana"}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's settings in a temp dir, for the test and the workers it starts."""
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HITL_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("HITL_STORE", "HITL_TARGET", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-worker")


def hitl(*argv: str) -> None:
    assert main(list(argv)) == 0


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def llm(demo_path: Path, model: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> Path:
    """A profile `llm` on the demo target, proposed by the scripted model server."""
    hitl(
        "profile", "add", "llm", "--target", str(demo_path), "--proposer", "openai",
        "--model", "test-model", "--base-url", model.base_url,
    )  # fmt: skip
    capsys.readouterr()
    return demo_path


def _new_store(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_worker")
    try:
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store made by `hitl migrate`, as its owner makes it: workers never migrate."""
    for url in _new_store(request.param, tmp_path):
        hitl("migrate", "--store", url)
        yield url


@pytest.fixture
def pg_store(tmp_path: Path) -> Iterator[str]:
    for url in _new_store("postgresql", tmp_path):
        hitl("migrate", "--store", url)
        yield url


class WorkerProcess:
    """A `hitl worker` process; its output lines are read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, as_json: bool) -> None:
        self.proc = proc
        self.as_json = as_json
        self.lines: list[str] = []
        self.stderr = b""
        self._new_line = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._errors = asyncio.create_task(self._read_errors())
        self.id = ""

    @classmethod
    async def start(cls, store: str, *more: str) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hitl_desktop.cli", "worker", "--store", store, *more,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        worker = cls(proc, "--json" in more)
        first = await worker.until(lambda line: "started" in line)
        worker.id = json.loads(first)["worker"] if worker.as_json else first.split()[2]
        assert worker.id.startswith("eng_"), first
        return worker

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode().rstrip("\n"))
            self._new_line.set()
        self._new_line.set()

    async def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    async def until(self, found: Callable[[str], bool], timeout: float = WAIT) -> str:
        """The first line (read so far or to come) for which *found* holds."""
        async with asyncio.timeout(timeout):
            while True:
                line = next((line for line in self.lines if found(line)), None)
                if line is not None:
                    return line
                if self._reader.done():
                    await self._errors
                    raise AssertionError(
                        f"the worker ended ({self.proc.returncode}) without such a line; "
                        f"stdout: {self.lines}; stderr: {self.stderr.decode()}"
                    )
                self._new_line.clear()
                await self._new_line.wait()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send *sig*; the exit status, once its output is all read."""
        self.proc.send_signal(sig)
        return await self.ended()

    async def ended(self) -> int:
        async with asyncio.timeout(WAIT):
            await asyncio.gather(self._reader, self._errors)
            return await self.proc.wait()

    async def kill(self) -> None:
        """SIGKILL, and reap it (a zombie still answers signal 0)."""
        self.proc.kill()
        await self.ended()


@pytest.fixture
async def workers() -> AsyncIterator[list[WorkerProcess]]:
    """Workers started by the test; any still running at its end are killed."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.proc.returncode is None:
            await worker.kill()


async def start_worker(started: list[WorkerProcess], store: str, *more: str) -> WorkerProcess:
    worker = await WorkerProcess.start(store, *more)
    started.append(worker)
    return worker


@pytest.fixture
async def console(store: str) -> AsyncIterator[Engine]:
    """Another process's view of the store: a review-only engine, as a team console."""
    async for engine in _console(store):
        yield engine


@pytest.fixture
async def pg_console(pg_store: str) -> AsyncIterator[Engine]:
    async for engine in _console(pg_store):
        yield engine


async def _console(url: str) -> AsyncIterator[Engine]:
    targets = Targets(load_settings().target_profiles())
    engine = Engine(url, tasks=[db_change_task(targets)], migrate=False, execute=False)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        targets.close()


async def request(console: Engine, text: str, profile: str, timeout: str | None = None) -> Run:
    change = change_request(load_settings(), text, profile=profile, timeout=timeout)
    run = await request_change(console, change)
    assert run.status == RunStatus.QUEUED  # a review-only console leaves it to the workers
    return run


async def until_status(console: Engine, run_id: str, status: RunStatus) -> Run:
    run = await console.wait_for(run_id, [status, RunStatus.FAILED], timeout=WAIT)
    assert run.status == status, run.error
    return run


def refunds(target: Path, invoice: int) -> list[tuple[Any, ...]]:
    with sqlite3.connect(target) as conn:
        rows = conn.execute(
            "select amount, status from refunds where invoice_id=?", (invoice,)
        ).fetchall()
    return rows


async def test_a_worker_executes_what_another_process_requests_and_logs_each_transition(
    store: str, shop: Path, console: Engine, workers: list[WorkerProcess]
) -> None:
    worker = await start_worker(workers, store)
    started = worker.lines[0]
    assert f" worker {worker.id} started on {store} as " in started
    assert "executes db-change runs for the profiles shop" in started
    run = await request(console, "Refund $20 on invoice 1042", "shop")
    waiting = await until_status(console, run.id, RunStatus.WAITING)
    token = waiting.waiting_token_id
    paused = await worker.until(lambda line: f"{run.id} paused" in line)
    assert paused.endswith(f"{run.id} paused: waiting for review (token {token})")
    assert paused[:20].endswith("Z") and paused[10] == "T"  # UTC, to the second
    triggered = await worker.until(lambda line: f"{run.id} triggered" in line)
    assert triggered.endswith(f"triggered: db-change [from {console.id}]")

    await console.decide(str(token), APPROVE, seen=await seen(console, run.id))
    await until_status(console, run.id, RunStatus.COMPLETED)
    decided = await worker.until(lambda line: f"{run.id} decided" in line)
    assert f"decided: approve by {console.actor} (token {token}) [from {console.id}]" in decided
    await worker.until(lambda line: line.endswith(f"{run.id} completed: applied"))
    assert refunds(shop, 1042) == [(20, "pending")]
    executing = next(line for line in worker.lines if line.endswith(f"{run.id} executing"))
    assert "[from" not in executing  # this worker claimed it
    order = [line.split(" ", 2)[2].split(":")[0] for line in worker.lines[1:]]
    assert order == ["triggered", "executing", "paused", "decided", "executing", "completed"]
    assert await worker.stop() == 0
    assert worker.lines[-1].endswith(
        f"worker {worker.id} stopped: its runs in flight went back to the queue"
    )


async def test_with_json_each_line_is_one_json_object(
    store: str, shop: Path, console: Engine, workers: list[WorkerProcess]
) -> None:
    worker = await start_worker(workers, store, "--json")
    run = await request(console, "Void invoice 4854", "shop")
    waiting = await until_status(console, run.id, RunStatus.WAITING)
    await worker.until(lambda line: '"RunPaused"' in line)
    await console.decide(
        str(waiting.waiting_token_id),
        {**APPROVE, "decision": "reject"},
        seen=await seen(console, run.id),
    )
    await until_status(console, run.id, RunStatus.COMPLETED)
    await worker.until(lambda line: '"RunCompleted"' in line)
    assert await worker.stop(signal.SIGINT) == 0
    entries = worker.entries()  # every line parses
    first, last = entries[0], entries[-1]
    assert first["event"] == "started" and first["worker"] == worker.id
    assert first["store"] == store and first["actor"] and first["profiles"] == ["shop"]
    assert first["task"] == "db-change"
    assert last == {"at": last["at"], "event": "stopped", "worker": worker.id}
    by_kind = {e["event"]: e for e in entries if e.get("run_id") == run.id}
    kinds = [e["event"] for e in entries if e.get("run_id") == run.id]
    assert kinds == [
        "RunTriggered", "RunResumed", "RunPaused", "TokenCompleted", "RunResumed", "RunCompleted"
    ]  # fmt: skip
    paused = by_kind["RunPaused"]
    assert paused["token_id"] == waiting.waiting_token_id and paused["origin"] == worker.id
    assert paused["at"].endswith("Z") and "T" in paused["at"]
    assert by_kind["TokenCompleted"]["decision"] == "reject"
    assert by_kind["TokenCompleted"]["by"] == console.actor
    assert by_kind["TokenCompleted"]["via_link"] is None  # decided in a console, not a link
    assert by_kind["RunCompleted"]["outcome"] == "rejected"
    assert "output" not in by_kind["RunCompleted"]  # the target's data stays out of the log


async def test_a_worker_fires_the_timer_of_a_review_nobody_decided(
    store: str, shop: Path, console: Engine, workers: list[WorkerProcess]
) -> None:
    worker = await start_worker(workers, store)
    run = await request(console, "Refund $20 on invoice 1042", "shop", timeout="1s")
    waiting = await until_status(console, run.id, RunStatus.WAITING)
    # No console executes: only the worker's timer can end the wait.
    done = await until_status(console, run.id, RunStatus.COMPLETED)
    assert isinstance(done.output, dict) and done.output["outcome"] == "expired"
    timed_out = await worker.until(lambda line: f"{run.id} timed out" in line)
    assert timed_out.endswith(
        f"{run.id} timed out: nobody decided in time (token {waiting.waiting_token_id})"
    )
    await worker.until(lambda line: line.endswith(f"{run.id} completed: expired"))
    assert refunds(shop, 1042) == []


async def test_a_worker_logs_a_review_past_its_rules_remind_after_once(
    store: str, shop: Path, console: Engine, workers: list[WorkerProcess]
) -> None:
    await console.apply_policy(
        '[[rule]]\nname = "slow"\napprovers = ["ana"]\nremind_after = "1s"\n'
        'escalate_to = ["lead"]\n'
    )
    worker = await start_worker(workers, store, "--check-overdue", "0.2")
    run = await request(console, "Refund $20 on invoice 1042", "shop")
    waiting = await until_status(console, run.id, RunStatus.WAITING)
    line = await worker.until(lambda line: f"{run.id} overdue" in line)
    assert "under rule 'slow' (0 of 1 approvals); lead may now decide too (token " in line
    assert line.endswith(f"(token {waiting.waiting_token_id})")
    await asyncio.sleep(0.6)  # a few more looks: said once
    assert sum(f"{run.id} overdue" in x for x in worker.lines) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_the_worker_and_hands_its_run_back(
    sig: signal.Signals,
    store: str,
    llm: Path,
    model: OpenAIServer,
    console: Engine,
    workers: list[WorkerProcess],
) -> None:
    model.script(delayed(tool_calls(("get_row", {"table": "invoices", "key": []})), WAIT * 2))
    worker = await start_worker(workers, store)
    run = await request(console, "Refund $20 on invoice 1042", "llm")
    await until_asked(model, 1)  # the run is mid-step: its model call is unanswered
    assert (await console.get_run(run.id)).status == RunStatus.EXECUTING
    assert await worker.stop(sig) == 0
    assert worker.lines[-1].endswith("stopped: its runs in flight went back to the queue")
    assert worker.stderr == b""
    handed_back = await console.get_run(run.id)
    assert handed_back.status == RunStatus.QUEUED
    assert await console.running_engines() == []  # the worker's row says it stopped

    # The next worker picks it up from the queue.
    model.script(
        tool_calls(("get_row", {"table": "invoices", "key": [{"column": "id", "value": 1042}]})),
        answer(REFUND),
    )
    await start_worker(workers, store)
    await until_status(console, run.id, RunStatus.WAITING)


async def until_asked(model: OpenAIServer, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while len(model.requests) < count:
            await asyncio.sleep(0.02)


async def test_a_killed_workers_run_is_taken_over_by_another_worker(
    store: str,
    llm: Path,
    model: OpenAIServer,
    console: Engine,
    workers: list[WorkerProcess],
) -> None:
    get_row = tool_calls(
        ("get_row", {"table": "invoices", "key": [{"column": "id", "value": 1042}]})
    )
    model.script(delayed(get_row, WAIT * 2), get_row, answer(REFUND))
    first = await start_worker(workers, store)
    run = await request(console, "Refund $20 on invoice 1042", "llm")
    await until_asked(model, 1)
    await first.kill()
    orphaned = await console.get_run(run.id)
    assert orphaned.status == RunStatus.EXECUTING  # nobody said it stopped: it just died

    second = await start_worker(workers, store)
    waiting = await until_status(console, run.id, RunStatus.WAITING)
    await second.until(
        lambda line: line.endswith(
            f"{run.id} paused: waiting for review (token {waiting.waiting_token_id})"
        )
    )
    await console.decide(str(waiting.waiting_token_id), APPROVE, seen=await seen(console, run.id))
    await until_status(console, run.id, RunStatus.COMPLETED)
    await second.until(lambda line: line.endswith(f"{run.id} completed: applied"))
    assert refunds(llm, 1042) == [(20, "pending")]
    assert len(model.requests) == 3
    assert await second.stop() == 0


async def test_two_workers_on_one_postgresql_store_execute_each_run_once(
    pg_store: str,
    shop: Path,
    pg_console: Engine,
    workers: list[WorkerProcess],
) -> None:
    console = pg_console
    with sqlite3.connect(shop) as conn:
        invoices = [
            row[0]
            for row in conn.execute(
                "select id from invoices where status='paid' and id not in "
                "(select invoice_id from refunds) order by id limit 16"
            )
        ]
    both = [
        await start_worker(workers, pg_store, "--json"),
        await start_worker(workers, pg_store, "--json"),
    ]
    runs = [await request(console, f"Refund $1 on invoice {i}", "shop") for i in invoices]
    tokens = [(await until_status(console, r.id, RunStatus.WAITING)).waiting_token_id for r in runs]
    hashes = [await seen(console, r.id) for r in runs]
    await asyncio.gather(
        *(console.decide(str(t), APPROVE, seen=h) for t, h in zip(tokens, hashes, strict=True))
    )
    for run in runs:
        await until_status(console, run.id, RunStatus.COMPLETED)
    for worker in both:  # each sees every run end, whichever worker ended it
        for run in runs:
            await worker.until(lambda line, r=run.id: '"RunCompleted"' in line and r in line)
        assert await worker.stop() == 0

    for run, invoice in zip(runs, invoices, strict=True):
        steps = await console.get_steps(run.id)
        applies = [s for s in steps if s.name == "apply"]
        assert [(s.ok, s.attempts) for s in applies] == [(True, 1)], run.id
        assert refunds(shop, invoice) == [(1, "pending")], invoice
    ids = {w.id for w in both}
    for worker in both:
        completed = [e for e in worker.entries() if e["event"] == "RunCompleted"]
        assert sorted(e["run_id"] for e in completed) == sorted(r.id for r in runs)
        assert {e["origin"] for e in completed} <= ids


async def hitl_process(*argv: str) -> tuple[int, str, str]:
    """Run `hitl *argv*` as its own process: its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hitl_desktop.cli", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(WAIT):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_worker_on_an_unmigrated_store_names_hitl_migrate(
    tmp_path: Path, shop: Path
) -> None:
    cases = [str(tmp_path / "empty.db")]
    (tmp_path / "empty.db").touch()
    database = None
    if pg.server_url():
        database, url = pg.create_database("hitl_bare")
        cases.append(url)
    try:
        for store in cases:
            code, out, line = await hitl_process("worker", "--store", store)
            assert code == 1 and out == "", (out, line)
            assert line.startswith("hitl: error: ") and line.count("\n") == 1, line
            assert "no hitl-desktop schema yet: run `hitl migrate --store" in line, line
    finally:
        if database is not None:
            pg.drop_database(database)


async def test_migrate_then_a_worker_starts_as_its_own_role(
    shop: Path, workers: list[WorkerProcess]
) -> None:
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    database, url = pg.create_database("hitl_team")
    role = f"worker_{uuid.uuid4().hex[:8]}"
    pg.admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        code, out, err = await hitl_process("migrate", "--store", url)  # as the owner, once
        assert (code, err) == (0, "") and out.startswith(f"store {url} is at schema revision")
        _grant_team(url, role)
        as_role = url.replace("postgresql://postgres@", f"postgresql://{role}@")
        worker = await start_worker(workers, as_role)
        assert f"started on {as_role} as {role}:" in worker.lines[0]
        assert await worker.stop() == 0
    finally:
        for worker in workers:
            if worker.proc.returncode is None:
                await worker.kill()
        pg.drop_database(database)
        pg.admin(f'DROP ROLE IF EXISTS "{role}_team"')
        pg.admin(f'DROP ROLE "{role}"')


def _grant_team(url: str, role: str) -> None:
    """docs/team.md's grants: a team role, and the worker's role in it."""
    team = f"{role}_team"
    db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with db.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{team}" NOLOGIN'))
        conn.execute(
            sa.text(
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{team}"'
            )
        )
        conn.execute(sa.text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{team}"'))
        conn.execute(sa.text(f'GRANT "{team}" TO "{role}"'))
    db.dispose()


def test_a_worker_without_target_profiles_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.db"
    hitl("migrate", "--store", str(store))
    capsys.readouterr()
    assert main(["worker", "--store", str(store)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "no target profiles" in err and "hitl profile add" in err


def test_a_worker_on_an_unreachable_server_says_so(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--store", "postgresql://w:s3cret@127.0.0.1:1/hitl"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "cannot reach the database server 127.0.0.1:1" in err
    assert "s3cret" not in err
