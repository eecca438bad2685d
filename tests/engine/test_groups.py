"""wait.for_any / wait.for_all: one suspension for several tokens, on SQLite and PostgreSQL.

The run waits on a group token (store/groups.py) that finishes when its members do; these
tests drive real engines on real stores, other processes completing members (at the same
moment, too), a process killed while the resumed run executes, a replay after a restart, and
a reviewer's role on a team store deciding a member."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.engine import (
    DecisionRefused,
    Engine,
    ReplayMismatch,
    Requirement,
    RunStatus,
    TokenStatus,
    task,
    wait,
)
from tests import pg
from tests.engine import team_roles
from tests.engine.group_process import grouped

FINISHED = ["COMPLETED", "FAILED", "CANCELED"]
ROOT = Path(__file__).resolve().parents[2]


async def members_of(engine: Engine, run_id: str) -> tuple[str, list[str]]:
    """The group a run waits on, and the tokens it created, in the order it created them."""
    run = await engine.wait_for(run_id, ["WAITING"], timeout=20)
    assert run.waiting_token_id is not None and run.waiting_token_id.startswith("grp_")
    steps = await engine.get_steps(run_id)
    created = [s.result["id"] for s in steps if s.kind == "token" and s.name == "create_token"]
    return run.waiting_token_id, created


async def finished(engine: Engine, run_id: str) -> dict[str, Any]:
    run = await engine.wait_for(run_id, FINISHED, timeout=30)
    assert run.status == RunStatus.COMPLETED, run.error
    output: dict[str, Any] = run.output
    return output


def results(output: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [(t, status, out) for t, status, _, out in output["group"]["results"]]


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    e = Engine(store_url, tasks=[grouped, bad_wait, shifting])
    await e.start()
    yield e
    await e.stop()


async def test_for_all_resumes_once_every_token_finished_with_results_in_the_order_given(
    engine: Engine,
) -> None:
    run = await engine.trigger("grouped", {"mode": "all", "n": 3, "order": [2, 0, 1]})
    group, (t0, t1, t2) = await members_of(engine, run.id)
    await engine.complete_token(t0, {"n": 0})
    await engine.complete_token(t2, {"n": 2})
    waiting = await engine.get_run(run.id)
    assert waiting.status == RunStatus.WAITING and waiting.waiting_token_id == group
    await engine.complete_token(t1, {"n": 1})
    output = await finished(engine, run.id)
    assert results(output) == [
        (t2, "COMPLETED", {"n": 2}),
        (t0, "COMPLETED", {"n": 0}),
        (t1, "COMPLETED", {"n": 1}),
    ]
    assert output["group"]["timed_out"] is False
    assert output["group"]["first"] == t0
    token = await engine.get_token(group)
    assert token.status == TokenStatus.COMPLETED
    assert [m["status"] for m in token.output["members"]] == ["COMPLETED"] * 3


async def test_for_any_resumes_at_the_first_and_shows_the_others_still_waiting(
    engine: Engine,
) -> None:
    run = await engine.trigger("grouped", {"mode": "any", "n": 3})
    group, (t0, t1, t2) = await members_of(engine, run.id)
    await engine.complete_token(t1, "second")
    output = await finished(engine, run.id)
    assert results(output) == [
        (t0, "WAITING", None),
        (t1, "COMPLETED", "second"),
        (t2, "WAITING", None),
    ]
    assert output["group"]["first"] == t1 and output["group"]["timed_out"] is False
    assert output["after"]["seen"] == output["group"]
    # The others stay open, for whoever wants them; the group is done with.
    await engine.complete_token(t0, "late")
    assert (await engine.get_token(group)).output["members"][0]["status"] == "WAITING"


async def test_the_group_deadline_ends_a_for_all_with_the_open_member_still_waiting(
    engine: Engine,
) -> None:
    run = await engine.trigger("grouped", {"mode": "all", "n": 2, "timeout": "300ms"})
    group, (t0, t1) = await members_of(engine, run.id)
    await engine.complete_token(t0, "done")
    output = await finished(engine, run.id)
    assert output["group"]["timed_out"] is True
    assert results(output) == [(t0, "COMPLETED", "done"), (t1, "WAITING", None)]
    assert (await engine.get_token(group)).status == TokenStatus.TIMED_OUT


async def test_a_member_timing_out_counts_as_finished(engine: Engine) -> None:
    payload = {"mode": "all", "member_timeouts": ["1h", "300ms"], "timeout": "1h"}
    run = await engine.trigger("grouped", payload)
    _, (t0, t1) = await members_of(engine, run.id)
    await engine.complete_token(t0, "ok")
    output = await finished(engine, run.id)
    assert output["group"]["timed_out"] is False
    assert results(output) == [(t0, "COMPLETED", "ok"), (t1, "TIMED_OUT", None)]
    assert output["group"]["results"][1][2] is False  # not ok
    any_run = await engine.trigger("grouped", {"mode": "any", "member_timeouts": ["1h", "300ms"]})
    _, (a0, a1) = await members_of(engine, any_run.id)
    any_output = await finished(engine, any_run.id)
    assert results(any_output) == [(a0, "WAITING", None), (a1, "TIMED_OUT", None)]
    assert any_output["group"]["first"] == a1


async def test_members_of_other_runs_already_finished_settle_the_group_at_the_pause(
    engine: Engine,
) -> None:
    holders = [await engine.trigger("grouped", {"mode": "any", "n": 1}) for _ in range(2)]
    (_, (h0,)), (_, (h1,)) = [await members_of(engine, h.id) for h in holders]
    await engine.complete_token(h1, "before")
    run = await engine.trigger("grouped", {"mode": "any", "tokens": [h0, h1]})
    output = await finished(engine, run.id)  # never paused: h1 had finished
    assert results(output) == [(h0, "WAITING", None), (h1, "COMPLETED", "before")]
    kinds = [(s.kind, s.name) for s in await engine.get_steps(run.id)]
    assert kinds[:2] == [("token", "for_any"), ("wait", kinds[1][1])]
    # A for_all over tokens of another run resumes when that run's token completes too.
    run_all = await engine.trigger("grouped", {"mode": "all", "tokens": [h1, h0]})
    await members_of(engine, run_all.id)
    await engine.complete_token(h0, "after")
    assert results(await finished(engine, run_all.id)) == [
        (h1, "COMPLETED", "before"),
        (h0, "COMPLETED", "after"),
    ]


async def test_a_replay_after_a_restart_sees_the_same_result(store_url: str) -> None:
    first = Engine(store_url, tasks=[grouped])
    await first.start()
    try:
        run = await first.trigger("grouped", {"mode": "any", "n": 2, "then_wait": True})
        _, (t0, t1) = await members_of(first, run.id)
        await first.complete_token(t0, "first")
        for _ in range(600):  # bounded: 30 s for the run to reach its last wait
            waiting = await first.get_run(run.id)
            if waiting.waiting_token_id and waiting.waiting_token_id.startswith("tok_"):
                break
            await asyncio.sleep(0.05)
    finally:
        await first.stop()
    second = Engine(store_url, tasks=[grouped])
    await second.start()
    try:
        await second.complete_token(t1, "meanwhile")  # after the wait ended: not seen
        final = (await second.get_run(run.id)).waiting_token_id
        assert final is not None
        await second.complete_token(final, "go")
        output = await finished(second, run.id)
    finally:
        await second.stop()
    assert results(output) == [(t0, "COMPLETED", "first"), (t1, "WAITING", None)]
    assert output["group"] == output["after"]["seen"]  # the replay's == the first execution's


# A task whose members depend on this module's state: a replay into changed code.
ORDER = [0, 1]


@task("shifting")
async def shifting(ctx: Any, payload: dict[str, Any]) -> Any:
    tokens = [await wait.create_token(timeout="1h", tags=["member"]) for _ in range(2)]
    got = await wait.for_all([tokens[i] for i in ORDER])
    return [r.ok for r in got.results]


async def test_the_replay_guard_fails_a_run_whose_members_changed(engine: Engine) -> None:
    run = await engine.trigger("shifting", None)
    _, (t0, t1) = await members_of(engine, run.id)
    ORDER[:] = [1, 0]
    try:
        await engine.complete_token(t0, 1)
        await engine.complete_token(t1, 2)
        failed = await engine.wait_for(run.id, FINISHED, timeout=30)
    finally:
        ORDER[:] = [0, 1]
    assert failed.status == RunStatus.FAILED
    assert ReplayMismatch.__name__ in (failed.error or "") and "for_all" in (failed.error or "")


@task("bad-wait")
async def bad_wait(ctx: Any, payload: dict[str, Any]) -> Any:
    await wait.for_any(payload["tokens"])


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([], "for_any needs at least one token, got an empty list"),
        (["tok_a", "tok_a"], "for_any: token tok_a is listed twice"),
        (["tok_a", 7], "for_any: item 1 is 7, not a token or a token id"),
        ([f"tok_{i}" for i in range(101)], "for_any takes at most 100 tokens, got 101"),
        (["grp_x"], "grp_x is itself a wait for any / all"),
        ("tok_a", "takes a list of tokens"),
        (["tok_missing"], "tok_missing"),
    ],
)
async def test_arguments_are_checked_with_a_clear_error(
    tmp_path: Path, tokens: Any, message: str
) -> None:
    e = Engine(f"sqlite:///{tmp_path / 'runs.db'}", tasks=[bad_wait])
    await e.start()
    try:
        run = await e.trigger("bad-wait", {"tokens": tokens})
        failed = await e.wait_for(run.id, FINISHED, timeout=20)
    finally:
        await e.stop()
    assert failed.status == RunStatus.FAILED
    assert message in (failed.error or "")


async def test_nobody_completes_or_decides_a_group_token(engine: Engine) -> None:
    run = await engine.trigger("grouped", {"mode": "all", "n": 1})
    group, (t0,) = await members_of(engine, run.id)
    with pytest.raises(DecisionRefused, match="it finishes when they do"):
        await engine.complete_token(group, "forced")
    with pytest.raises(DecisionRefused, match="it finishes when they do"):
        await engine.decide(group, {"decision": "approve"})
    assert group not in await engine.waiting_for_me()
    assert t0 in await engine.waiting_for_me()
    await engine.decide(t0, {"decision": "approve"})  # a decision finishes a member too
    assert results(await finished(engine, run.id)) == [(t0, "COMPLETED", {"decision": "approve"})]


# ------------------------------------------------------------------ other processes


def start_helper(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engine.group_process", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line


@pytest.mark.parametrize("mode", ["all", "any"])
async def test_two_processes_completing_two_members_at_the_same_moment_wake_the_run_once(
    store_url: str, tmp_path: Path, mode: str
) -> None:
    n_runs, log = 8, tmp_path / "after.jsonl"
    setup = Engine(store_url, tasks=[grouped])
    await setup.start()
    try:
        runs = [
            await setup.trigger("grouped", {"mode": mode, "n": 2, "log": str(log)})
            for _ in range(n_runs)
        ]
        members = {r.id: (await members_of(setup, r.id))[1] for r in runs}
    finally:
        await setup.stop()
    procs = []
    for side in (0, 1):
        plan = tmp_path / f"plan{side}.json"
        plan.write_text(json.dumps([m[side] for m in members.values()]))
        procs.append(start_helper("complete", store_url, str(plan)))
    try:
        for proc in procs:
            await asyncio.to_thread(ready, proc)
        for proc in procs:  # both start together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = await asyncio.to_thread(proc.communicate, timeout=60)
            assert proc.returncode == 0, err
            assert json.loads(out.splitlines()[-1]) == {"completed": n_runs}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    resumer = Engine(store_url, tasks=[grouped])
    await resumer.start()  # claims what the completions queued
    try:
        outputs = {r.id: await finished(resumer, r.id) for r in runs}
    finally:
        await resumer.stop()
    executions = Counter(json.loads(line)["run"] for line in log.read_text().splitlines())
    assert executions == Counter({r.id: 1 for r in runs})  # each woken and resumed once
    for run_id, output in outputs.items():
        statuses = [status for _, status, _ in results(output)]
        t0, t1 = members[run_id]
        if mode == "all":
            assert statuses == ["COMPLETED", "COMPLETED"]
        else:  # settled by whichever commit came first; the other was not finished then
            assert sorted(statuses) == ["COMPLETED", "WAITING"]
            done = t0 if statuses[0] == "COMPLETED" else t1
            assert output["group"]["first"] == done


async def test_a_process_killed_while_the_resumed_run_executes_is_recovered_once(
    store_url: str, tmp_path: Path
) -> None:
    log, hold = tmp_path / "after.jsonl", tmp_path / "hold"
    setup = Engine(store_url, tasks=[grouped])
    await setup.start()
    try:
        payload = {"mode": "all", "n": 2, "log": str(log), "hold": str(hold)}
        run = await setup.trigger("grouped", payload)
        _, (t0, t1) = await members_of(setup, run.id)
    finally:
        await setup.stop()
    hold.touch()
    server = start_helper("serve", store_url)
    try:
        await asyncio.to_thread(ready, server)
        # Completed by a process that executes nothing: the serving engine claims the run.
        completer = Engine(store_url, tasks=[grouped], execute=False)
        await completer.open()
        try:
            await completer.complete_token(t0, "zero")
            await completer.complete_token(t1, "one")
        finally:
            await completer.stop()
        for _ in range(600):  # bounded: 30 s for the server to resume the run into its step
            if log.exists() and log.read_text():
                break
            await asyncio.sleep(0.05)
        assert [json.loads(x)["pid"] for x in log.read_text().splitlines()] == [server.pid]
        server.kill()
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    hold.unlink()
    survivor = Engine(store_url, tasks=[grouped])
    await survivor.start()  # recovers the run the killed engine was executing
    try:
        output = await finished(survivor, run.id)
        steps = await survivor.get_steps(run.id)
    finally:
        await survivor.stop()
    assert results(output) == [(t0, "COMPLETED", "zero"), (t1, "COMPLETED", "one")]
    assert output["after"]["seen"] == output["group"]
    assert len(log.read_text().splitlines()) == 2  # the killed execution, then the recovery
    assert [(s.kind, s.name) for s in steps].count(("step", "after")) == 1


# ------------------------------------------------------------------ a team store


@task("reviewed-group")
async def reviewed_group(ctx: Any, payload: dict[str, Any]) -> Any:
    requirement = Requirement(approvers=tuple(payload["approvers"]))
    tokens = [await wait.create_token(timeout="1h", requirement=requirement) for _ in range(2)]
    got = await wait.for_all(tokens)
    return [[r.token_id, r.ok, r.output] for r in got.results]


async def test_a_reviewer_role_deciding_a_member_settles_the_group_on_postgresql() -> None:
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_groups")
    suffix = uuid.uuid4().hex[:8]
    members = {"ana": ["hitl_reviewer"], "worker1": ["hitl_worker"]}
    owner = Engine(url)
    await owner.open()
    await owner.stop()
    team_roles.grant(url, suffix, members)
    engines: list[Engine] = []
    try:
        worker = Engine(
            team_roles.as_role(url, f"worker1_{suffix}"), tasks=[reviewed_group], migrate=False
        )
        await worker.start()
        engines.append(worker)
        ana = Engine(
            team_roles.as_role(url, f"ana_{suffix}"),
            tasks=[reviewed_group],
            migrate=False,
            execute=False,
        )
        await ana.start()
        engines.append(ana)
        run = await worker.trigger("reviewed-group", {"approvers": [f"ana_{suffix}"]})
        group, (t0, t1) = await members_of(worker, run.id)
        with pytest.raises(DecisionRefused, match="it finishes when they do"):
            await ana.decide(group, {"decision": "approve"})
        first = await ana.decide(t0, {"decision": "approve", "part": 0})
        assert first.status == TokenStatus.COMPLETED
        assert (await worker.get_run(run.id)).status == RunStatus.WAITING
        await ana.decide(t1, {"decision": "reject", "part": 1})
        done = await worker.wait_for(run.id, FINISHED, timeout=30)
        assert done.status == RunStatus.COMPLETED, done.error
        assert done.output == [
            [t0, True, {"decision": "approve", "part": 0}],
            [t1, True, {"decision": "reject", "part": 1}],
        ]
        group_token = await worker.get_token(group)
        assert group_token.completed_by == f"ana_{suffix}"
    finally:
        for e in reversed(engines):
            await e.stop()
        pg.drop_database(name)
        team_roles.drop(url, suffix, members)
