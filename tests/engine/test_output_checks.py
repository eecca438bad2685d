"""A task's output check runs where the decision commits: a refused output changes nothing."""

from typing import Any

import pytest

from hitl_desktop.engine import (
    Engine,
    OutputRefused,
    RunStatus,
    TokenAlreadyFinished,
    TokenStatus,
    task,
    wait,
)


class DecisionProblem(Exception):
    """Not a ValueError, as the agent's own errors are not."""


def check_decision(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("approved"), bool):
        raise ValueError(f"a decision is an object with a boolean 'approved', not {data!r}")
    if data.get("edit") == "bad":
        raise DecisionProblem("the edit names row 9 of a 2-row proposal")


@task("checked-decision", check_output=check_decision)
async def checked_decision(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


@task("unchecked-decision")
async def unchecked_decision(ctx, payload):
    token = await wait.create_token(timeout="1h", idempotency_key=payload["key"])
    return (await wait.for_token(token)).output


@task("checked-shared-decision", check_output=check_decision)
async def checked_shared_decision(ctx, payload):
    # Waits on the token another task's run created (shared through its key).
    token = await wait.create_token(timeout="1h", idempotency_key=payload["key"])
    return (await wait.for_token(token)).output


async def _waiting(engine: Engine, task_name: str, payload: Any = None) -> tuple[str, str]:
    run = await engine.trigger(task_name, payload)
    waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
    assert waiting.waiting_token_id is not None
    return run.id, waiting.waiting_token_id


async def _still_waiting(engine: Engine, run_id: str, token_id: str) -> None:
    token = await engine.get_token(token_id)
    assert token.status == TokenStatus.WAITING and token.output is None
    run = await engine.get_run(run_id)
    assert run.status == RunStatus.WAITING and run.waiting_token_id == token_id


async def test_a_refused_output_changes_nothing_and_the_run_keeps_waiting(engine: Engine):
    run_id, token_id = await _waiting(engine, "checked-decision")
    with pytest.raises(OutputRefused, match=r"boolean 'approved', not \{'approved': 'yes'\}"):
        await engine.complete_token(token_id, {"approved": "yes"})
    await _still_waiting(engine, run_id, token_id)
    assert token_id in engine._runner._paused  # the kept history is still valid and kept

    await engine.complete_token(token_id, {"approved": True})
    assert (await engine.wait_for(run_id, ["COMPLETED"])).output == {"approved": True}


async def test_any_exception_from_the_check_refuses_and_is_kept_as_the_cause(engine: Engine):
    run_id, token_id = await _waiting(engine, "checked-decision")
    with pytest.raises(OutputRefused, match="edit names row 9") as refused:
        await engine.complete_token(token_id, {"approved": True, "edit": "bad"})
    assert isinstance(refused.value.__cause__, DecisionProblem)
    assert refused.value.token_id == token_id
    await _still_waiting(engine, run_id, token_id)


async def test_a_process_that_does_not_execute_the_task_still_checks(store_url: str):
    async with Engine(store_url, tasks=[checked_decision]) as executing:
        run_id, token_id = await _waiting(executing, "checked-decision")
        completing = Engine(store_url, tasks=[checked_decision])  # opened, never started
        try:
            with pytest.raises(OutputRefused):
                await completing.complete_token(token_id, ["approved"])
            await _still_waiting(completing, run_id, token_id)
            await completing.complete_token(token_id, {"approved": False})
        finally:
            await completing.stop()
        assert (await executing.wait_for(run_id, ["COMPLETED"])).output == {"approved": False}


async def test_the_check_of_a_run_waiting_on_a_shared_token_applies(engine: Engine):
    creator, token_id = await _waiting(engine, "unchecked-decision", {"key": "order-9"})
    waiter, shared = await _waiting(engine, "checked-shared-decision", {"key": "order-9"})
    assert shared == token_id
    with pytest.raises(OutputRefused):
        await engine.complete_token(token_id, "yes")
    for run_id in (creator, waiter):
        await _still_waiting(engine, run_id, token_id)
    await engine.complete_token(token_id, {"approved": True})
    for run_id in (creator, waiter):
        assert (await engine.wait_for(run_id, ["COMPLETED"])).output == {"approved": True}


async def test_tasks_without_a_check_take_any_output(engine: Engine):
    run_id, token_id = await _waiting(engine, "unchecked-decision", {"key": "order-10"})
    await engine.complete_token(token_id, "yes")
    assert (await engine.wait_for(run_id, ["COMPLETED"])).output == "yes"


async def test_a_finished_token_is_reported_as_finished_not_refused(engine: Engine):
    _, token_id = await _waiting(engine, "checked-decision")
    await engine.complete_token(token_id, {"approved": True})
    with pytest.raises(TokenAlreadyFinished, match="already COMPLETED"):
        await engine.complete_token(token_id, "not a decision")


def test_a_check_that_is_not_callable_is_named():
    with pytest.raises(TypeError, match="check_output of task 'x' must be callable"):
        task("x", check_output="Decision")  # type: ignore[arg-type]
