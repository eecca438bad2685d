"""Suspend, resume by replay, failures, cancellation: the life of a run."""

import asyncio
import contextlib
import threading

import pytest

from hitl_desktop.engine import (
    Engine,
    ReplayMismatch,
    RunCompleted,
    RunFailed,
    RunPaused,
    RunStatus,
    StepFailed,
    TaskNotFound,
    task,
    wait,
)

calls: list[str] = []


def record(name: str, value: object) -> object:
    calls.append(name)
    return value


@task("refund-invoice")
async def refund_invoice(ctx, payload):
    quote = await ctx.step("quote", record, "quote", {"amount": payload["amount"]})
    token = await wait.create_token(timeout="10m", tags=["refund"])
    result = await wait.for_token(token)
    if not result.ok:
        return {"status": "expired"}
    return await ctx.step("apply", record, "apply", {"refunded": quote["amount"], **result.output})


@pytest.fixture(autouse=True)
def _clear_calls():
    calls.clear()


async def test_a_run_suspends_at_its_token_and_holds_no_task(engine: Engine):
    run = await engine.trigger("refund-invoice", {"amount": 20})
    waiting = await engine.wait_for(run.id)
    assert waiting.status == RunStatus.WAITING
    assert waiting.waiting_token_id is not None
    assert calls == ["quote"]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("hitl-run-")]


async def test_completion_resumes_by_replay_without_rerunning_finished_steps(engine: Engine):
    run = await engine.trigger("refund-invoice", {"amount": 20})
    waiting = await engine.wait_for(run.id)
    await engine.complete_token(waiting.waiting_token_id, {"reviewer": "ana"})
    done = await engine.wait_for(run.id, [RunStatus.COMPLETED, RunStatus.FAILED])
    assert done.status == RunStatus.COMPLETED
    assert done.output == {"refunded": 20, "reviewer": "ana"}
    assert calls == ["quote", "apply"]  # quote replayed from its record, not run again
    kinds = [(s.kind, s.name) for s in await engine.get_steps(run.id)]
    assert kinds == [
        ("step", "quote"),
        ("token", "create_token"),
        ("wait", waiting.waiting_token_id),
        ("step", "apply"),
    ]


async def test_a_waiting_run_survives_a_restart(store_url: str):
    first = Engine(store_url)
    await first.start()
    run = await first.trigger("refund-invoice", {"amount": 5})
    token_id = (await first.wait_for(run.id)).waiting_token_id
    await first.stop()

    second = Engine(store_url)
    await second.start()
    try:
        await second.complete_token(token_id, {"reviewer": "bo"})
        done = await second.wait_for(run.id, ["COMPLETED"])
        assert done.output == {"refunded": 5, "reviewer": "bo"}
        assert calls == ["quote", "apply"]
    finally:
        await second.stop()


async def test_ten_thousand_waiting_runs_hold_no_task_thread_or_process(engine: Engine):
    threads_before = threading.active_count()
    async with engine.events() as stream:
        runs = await asyncio.gather(
            *(engine.trigger("refund-invoice", {"amount": i}) for i in range(10_000))
        )
        paused = 0
        async with asyncio.timeout(120):
            async for event in stream:
                paused += isinstance(event, RunPaused)
                if paused == len(runs):
                    break
    assert (await engine.count_runs()) == {"WAITING": 10_000}
    run_tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("hitl-run-")]
    assert run_tasks == []
    assert engine._runner.running == {}
    assert threading.active_count() == threads_before


@task("explodes")
async def explodes(ctx, payload):
    await ctx.step("ok", record, "ok", 1)
    raise RuntimeError("the ledger is closed")


async def test_an_unhandled_error_fails_the_run_with_its_traceback(engine: Engine):
    async with engine.events() as stream:
        run = await engine.trigger("explodes", None)
        event = await _next_of(stream, RunFailed, run.id)
    assert event.error == "RuntimeError: the ledger is closed"
    assert "the ledger is closed" in (event.traceback or "")
    failed = await engine.get_run(run.id)
    assert failed.status == RunStatus.FAILED
    assert "raise RuntimeError" in (failed.traceback or "")
    assert [s.name for s in await engine.get_steps(run.id)] == ["ok"]


attempts: list[int] = []


def flaky() -> str:
    attempts.append(1)
    if len(attempts) < 3:
        raise ConnectionError("try again")
    return "fine"


@task("flaky")
async def flaky_task(ctx, payload):
    first = await ctx.step("flaky", flaky, retries=2, backoff=0.01)
    try:
        await ctx.step("hopeless", _raise, retries=1, backoff=0.01)
    except StepFailed as exc:
        return {"first": first, "second": str(exc), "attempts": exc.attempts}
    return None


async def test_step_retries_with_backoff_then_records_the_failure(engine: Engine):
    attempts.clear()  # the test runs once per store dialect
    run = await engine.trigger("flaky")
    done = await engine.wait_for(run.id, ["COMPLETED", "FAILED"])
    assert done.output == {
        "first": "fine",
        "second": "step 'hopeless' failed after 2 attempt(s): ValueError: no",
        "attempts": 2,
    }
    steps = await engine.get_steps(run.id)
    assert [(s.name, s.ok, s.attempts) for s in steps] == [
        ("flaky", True, 3),
        ("hopeless", False, 2),
    ]
    assert steps[1].error == "ValueError: no"


def _raise() -> None:
    raise ValueError("no")


async def test_replay_guard_fails_a_run_whose_code_changed(store_url: str):
    @task("evolving")
    async def v1(ctx, payload):
        await ctx.step("fetch", record, "fetch", 1)
        token = await wait.create_token(timeout="1h")
        await wait.for_token(token)
        return await ctx.step("write", record, "write", 2)

    first = Engine(store_url, tasks=[v1])
    await first.start()
    run = await first.trigger("evolving")
    token_id = (await first.wait_for(run.id)).waiting_token_id
    await first.stop()

    @task("evolving")
    async def v2(ctx, payload):  # the same task, redeployed with a step inserted first
        await ctx.step("audit", record, "audit", 0)
        await ctx.step("fetch", record, "fetch", 1)
        with contextlib.suppress(ReplayMismatch):  # swallowing the guard must not help
            await wait.create_token(timeout="1h")
        return await ctx.step("write", record, "write", 2)

    second = Engine(store_url, tasks=[v2])
    await second.start()
    try:
        await second.complete_token(token_id, {})
        done = await second.wait_for(run.id, ["COMPLETED", "FAILED"])
    finally:
        await second.stop()
    assert done.status == RunStatus.FAILED
    assert "position 0" in done.error and "'fetch'" in done.error and "'audit'" in done.error
    assert calls == ["fetch"]  # neither audit nor write ran
    assert [s.name for s in await _steps(store_url, run.id)] == ["fetch", "create_token"]


async def test_unknown_task_is_refused_before_anything_is_written(engine: Engine):
    with pytest.raises(TaskNotFound, match="no task named 'nope'"):
        await engine.trigger("nope", {})
    assert await engine.list_runs() == []


async def test_trigger_idempotency_returns_the_existing_run(engine: Engine):
    one = await engine.trigger("refund-invoice", {"amount": 1}, idempotency_key="inv-1042")
    two = await engine.trigger("refund-invoice", {"amount": 999}, idempotency_key="inv-1042")
    assert two.id == one.id and two.is_cached and not one.is_cached
    assert two.payload == {"amount": 1}
    assert len(await engine.list_runs()) == 1


async def test_trigger_idempotency_key_expires_after_its_ttl(store_url: str):
    now = [1_000_000.0]
    engine = Engine(store_url, clock=lambda: now[0])
    await engine.start()
    try:
        one = await engine.trigger(
            "refund-invoice", {"amount": 1}, idempotency_key="k", idempotency_key_ttl="1m"
        )
        now[0] += 30
        assert (
            await engine.trigger("refund-invoice", {"amount": 1}, idempotency_key="k")
        ).id == one.id
        now[0] += 31
        three = await engine.trigger("refund-invoice", {"amount": 1}, idempotency_key="k")
        assert three.id != one.id and not three.is_cached
    finally:
        await engine.stop()


async def test_a_run_triggered_without_a_started_engine_runs_when_one_starts(store_url: str):
    cold = Engine(store_url)
    run = await cold.trigger("refund-invoice", {"amount": 3})
    assert run.status == RunStatus.QUEUED
    await cold.stop()
    assert calls == []
    warm = Engine(store_url)
    await warm.start()
    try:
        assert (await warm.wait_for(run.id)).status == RunStatus.WAITING
    finally:
        await warm.stop()


async def test_cancel_a_waiting_run(engine: Engine):
    run = await engine.trigger("refund-invoice", {"amount": 20})
    waiting = await engine.wait_for(run.id)
    assert await engine.cancel(run.id, "duplicate request")
    canceled = await engine.get_run(run.id)
    assert canceled.status == RunStatus.CANCELED and canceled.error == "duplicate request"
    # Its token may still be completed, but nothing resumes and nothing is applied.
    await engine.complete_token(waiting.waiting_token_id, {"reviewer": "ana"})
    await asyncio.sleep(0.05)
    assert (await engine.get_run(run.id)).status == RunStatus.CANCELED
    assert calls == ["quote"]
    assert not await engine.cancel(run.id)


async def test_completed_event_carries_the_output(engine: Engine):
    async with engine.events() as stream:
        run = await engine.trigger("refund-invoice", {"amount": 7})
        paused = await _next_of(stream, RunPaused, run.id)
        await engine.complete_token(paused.token_id, {"reviewer": "cy"})
        completed = await _next_of(stream, RunCompleted, run.id)
    assert completed.output == {"refunded": 7, "reviewer": "cy"}
    assert completed.origin == engine.id


async def test_callers_that_stop_waiting_do_not_strand_the_runs_they_committed(engine: Engine):
    """trigger() and complete_token() cancelled once their write is queued: the write commits
    all the same, and the run it started or resumed still executes (it used to stay
    EXECUTING, owned by this engine, with nothing running it)."""
    async with engine.events() as stream:
        trigger = asyncio.create_task(engine.trigger("refund-invoice", {"amount": 3}))
        await asyncio.sleep(0)  # trigger() runs up to the wait for its commit
        trigger.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trigger
        paused = await _next_of(stream, RunPaused, None)
        complete = asyncio.create_task(engine.complete_token(paused.token_id, {"r": "ana"}))
        await asyncio.sleep(0)
        complete.cancel()
        with pytest.raises(asyncio.CancelledError):
            await complete
        completed = await _next_of(stream, RunCompleted, paused.run_id)
    assert completed.output == {"refunded": 3, "r": "ana"}
    assert calls == ["quote", "apply"]


# ---------------------------------------------------------------- helpers


async def _next_of(stream, kind, run_id):
    async with asyncio.timeout(10):
        async for event in stream:
            if isinstance(event, kind) and run_id in (None, event.run_id):
                return event
    raise AssertionError("stream ended")


async def _steps(store_url: str, run_id: str):
    reader = Engine(store_url)
    try:
        return await reader.get_steps(run_id)
    finally:
        await reader.stop()


@task("two-waits")
async def two_waits(ctx, payload):
    a = await ctx.step("a", record, "a", payload)
    first = await wait.create_token(timeout="1h")
    await ctx.step("b", record, "b", a + 1)
    decided = await wait.for_token(first)
    second = await wait.create_token(timeout="1h")
    await ctx.step("c", record, "c", decided.output)
    return (await wait.for_token(second)).output


async def test_the_history_kept_at_a_pause_is_the_one_in_the_store(engine: Engine):
    """A run this engine paused is resumed from the history the engine kept, not read back:
    at every pause that history must be exactly what the store holds."""
    from hitl_desktop.engine.store import history

    async def stored(run_id: str):
        return await engine.db.executor.read(lambda tx: history.resume(tx, run_id, None))

    run = await engine.trigger("two-waits", 1)
    for output in (10, 20):
        waiting = await engine.wait_for(run.id, ["WAITING"])
        kept = engine._runner._paused[waiting.waiting_token_id]
        assert kept.run_id == run.id and kept.payload == "1"
        assert kept.steps == (await stored(run.id)).steps
        await engine.complete_token(waiting.waiting_token_id, output)
    done = await engine.wait_for(run.id, ["COMPLETED", "FAILED"])
    assert done.status == "COMPLETED" and done.output == 20
    assert calls == ["a", "b", "c"]  # nothing ran twice
