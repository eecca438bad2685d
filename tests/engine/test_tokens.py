"""Waitpoint tokens: timeouts, exactly-once completion, idempotency, tags, payload limits."""

import asyncio

import pytest

from hitl_desktop.engine import (
    Engine,
    NotInRun,
    NotJSON,
    PayloadTooLarge,
    RunStatus,
    TokenAlreadyFinished,
    TokenNotFound,
    TokenStatus,
    TokenTimedOut,
    TokenTimeoutError,
    task,
    wait,
)

cleanups: list[str] = []


@task("approve-with-timeout")
async def approve_with_timeout(ctx, payload):
    token = await wait.create_token(timeout=payload.get("timeout"), tags=payload.get("tags", []))
    result = await wait.for_token(token)
    if not result.ok:
        await ctx.step("cleanup", cleanups.append, token.id)
        with pytest.raises(TokenTimeoutError):
            result.unwrap()
        return {"status": "expired"}
    return {"status": "decided", "decision": result.unwrap()}


@task("keyed-token")
async def keyed_token(ctx, payload):
    token = await wait.create_token(timeout="1h", idempotency_key=payload["key"])
    return {"token": token.id, "cached": token.is_cached}


@task("shared-approval")
async def shared_approval(ctx, payload):
    # Two runs for the same order ask the reviewer once: the key makes them share a token.
    token = await wait.create_token(timeout="1h", idempotency_key=f"approve-{payload['order']}")
    return (await wait.for_token(token)).output


@task("echo")
async def echo(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


@pytest.fixture(autouse=True)
def _clear():
    cleanups.clear()


async def _waiting_token(engine: Engine, payload: dict) -> tuple[str, str]:
    run = await engine.trigger("approve-with-timeout", payload)
    waiting = await engine.wait_for(run.id)
    assert waiting.status == RunStatus.WAITING
    return run.id, waiting.waiting_token_id


async def test_a_token_without_timeout_gets_the_default_of_24_hours(engine: Engine):
    _, token_id = await _waiting_token(engine, {})
    token = await engine.get_token(token_id)
    assert abs((token.expires_at - token.created_at).total_seconds() - 86400) < 1e-3


async def test_default_timeout_is_configurable(store_url: str):
    engine = Engine(store_url, default_token_timeout="90s")
    await engine.start()
    try:
        _, token_id = await _waiting_token(engine, {})
        token = await engine.get_token(token_id)
        assert abs((token.expires_at - token.created_at).total_seconds() - 90) < 1e-3
    finally:
        await engine.stop()


async def test_timer_times_out_a_token_and_the_run_resumes_to_clean_up(engine: Engine):
    async with engine.events() as stream:
        run_id, token_id = await _waiting_token(engine, {"timeout": "200ms"})
        async with asyncio.timeout(5):
            async for event in stream:
                if isinstance(event, TokenTimedOut):
                    break
    assert event.token_id == token_id
    done = await engine.wait_for(run_id, ["COMPLETED", "FAILED"])
    assert done.output == {"status": "expired"}
    assert cleanups == [token_id]
    assert (await engine.get_token(token_id)).status == TokenStatus.TIMED_OUT
    with pytest.raises(TokenAlreadyFinished, match="TIMED_OUT"):
        await engine.complete_token(token_id, {"late": True})


async def test_one_timer_serves_many_tokens_earliest_first(engine: Engine):
    runs = [await _waiting_token(engine, {"timeout": f"{t}ms"}) for t in (600, 200, 400)]
    assert engine._background._timer is not None
    await asyncio.sleep(0.3)
    statuses = [(await engine.get_token(tok)).status for _, tok in runs]
    assert statuses == [TokenStatus.WAITING, TokenStatus.TIMED_OUT, TokenStatus.WAITING]
    for run_id, _ in runs:
        assert (await engine.wait_for(run_id, ["COMPLETED"], timeout=5)).output == {
            "status": "expired"
        }


async def test_tokens_that_expired_while_closed_time_out_at_start(store_url: str):
    now = [2_000_000.0]
    first = Engine(store_url, clock=lambda: now[0])
    await first.start()
    run_id, token_id = await _waiting_token(first, {"timeout": "1h"})
    await first.stop()

    now[0] += 2 * 3600  # the app stayed closed for two hours
    second = Engine(store_url, clock=lambda: now[0])
    await second.start()
    try:
        done = await second.wait_for(run_id, ["COMPLETED", "FAILED"], timeout=5)
        assert done.output == {"status": "expired"}
        assert cleanups == [token_id]
    finally:
        await second.stop()


async def test_complete_token_is_compare_and_set(engine: Engine):
    run_id, token_id = await _waiting_token(engine, {})
    await engine.complete_token(token_id, {"approved": True})
    with pytest.raises(TokenAlreadyFinished, match="already COMPLETED"):
        await engine.complete_token(token_id, {"approved": False})
    done = await engine.wait_for(run_id, ["COMPLETED"])
    assert done.output == {"status": "decided", "decision": {"approved": True}}
    assert (await engine.get_token(token_id)).output == {"approved": True}


async def test_concurrent_completions_in_one_process_have_one_winner(engine: Engine):
    _, token_id = await _waiting_token(engine, {})
    results = await asyncio.gather(
        *(engine.complete_token(token_id, {"n": n}) for n in range(20)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, TokenAlreadyFinished) for r in results if r not in winners)


async def test_unknown_token_is_named(engine: Engine):
    with pytest.raises(TokenNotFound, match="tok_nope"):
        await engine.complete_token("tok_nope", {})


async def test_token_idempotency_key_returns_the_same_token(engine: Engine):
    one = await engine.trigger("keyed-token", {"key": "order-7"})
    two = await engine.trigger("keyed-token", {"key": "order-7"})
    out1 = (await engine.wait_for(one.id, ["COMPLETED"])).output
    out2 = (await engine.wait_for(two.id, ["COMPLETED"])).output
    assert out1["token"] == out2["token"]
    assert sorted([out1["cached"], out2["cached"]]) == [False, True]  # one made it, one reused it


async def test_list_tokens_filters_by_status_and_all_tags(engine: Engine):
    _, a = await _waiting_token(engine, {"tags": ["refund", "invoices"]})
    _, b = await _waiting_token(engine, {"tags": ["refund"]})
    _, c = await _waiting_token(engine, {"tags": ["plan-change"]})
    await engine.complete_token(b, {})
    ids = lambda tokens: {t.id for t in tokens}  # noqa: E731
    assert ids(await engine.list_tokens(status="WAITING")) == {a, c}
    assert ids(await engine.list_tokens(tags=["refund"])) == {a, b}
    assert ids(await engine.list_tokens(status="WAITING", tags=["refund"])) == {a}
    assert ids(await engine.list_tokens(tags=["refund", "invoices"])) == {a}
    assert await engine.list_tokens(tags=["nothing"]) == []


async def test_bad_timeouts_and_tags_are_named(engine: Engine):
    for payload, message in [
        ({"timeout": "soon"}, "invalid duration 'soon'"),
        ({"timeout": -5}, "invalid duration -5"),
        ({"tags": "refund"}, "tags must be a list"),
        ({"tags": [str(i) for i in range(11)]}, "at most 10 tags"),
    ]:
        run = await engine.trigger("approve-with-timeout", payload)
        failed = await engine.wait_for(run.id, ["FAILED", "WAITING"])
        assert failed.status == RunStatus.FAILED
        assert message in failed.error


async def test_runs_sharing_a_keyed_token_all_resume_when_it_completes(engine: Engine):
    first = await engine.trigger("shared-approval", {"order": 7})
    second = await engine.trigger("shared-approval", {"order": 7})
    token_a = (await engine.wait_for(first.id)).waiting_token_id
    token_b = (await engine.wait_for(second.id)).waiting_token_id
    assert token_a == token_b
    await engine.complete_token(token_a, {"approved": True})
    for run in (first, second):
        assert (await engine.wait_for(run.id, ["COMPLETED"])).output == {"approved": True}


async def test_wait_outside_a_run_is_refused():
    with pytest.raises(NotInRun):
        await wait.create_token()


async def test_large_outputs_are_stored_out_of_line(engine: Engine):
    run = await engine.trigger("echo")
    token_id = (await engine.wait_for(run.id)).waiting_token_id
    big = {"blob": "x" * (16 * 1024 * 1024)}
    await engine.complete_token(token_id, big)
    done = await engine.wait_for(run.id, ["COMPLETED", "FAILED"], timeout=60)
    assert done.status == RunStatus.COMPLETED
    assert done.output == big
    assert (await engine.get_token(token_id)).output == big


async def test_oversized_values_are_refused_before_anything_is_written(store_url: str):
    engine = Engine(store_url, max_payload_bytes=1024)
    await engine.start()
    try:
        with pytest.raises(
            PayloadTooLarge, match=r"2,0\d\d bytes of JSON, over the limit of 1,024"
        ):
            await engine.trigger("echo", {"x": "y" * 2000})
        assert await engine.list_runs() == []
        run = await engine.trigger("echo", {})
        token_id = (await engine.wait_for(run.id)).waiting_token_id
        with pytest.raises(PayloadTooLarge):
            await engine.complete_token(token_id, ["z" * 5000])
        assert (await engine.get_token(token_id)).status == TokenStatus.WAITING
        with pytest.raises(NotJSON, match="set is not JSON serializable"):
            await engine.complete_token(token_id, {1, 2})
        # The store is still usable: nothing is left half-done or locked.
        await engine.complete_token(token_id, {"ok": 1})
        assert (await engine.wait_for(run.id, ["COMPLETED"])).output == {"ok": 1}
    finally:
        await engine.stop()


async def test_complete_token_returns_the_token_as_the_store_holds_it(store_url: str):
    """Whether the engine completing it paused its run (and kept its history), the token is
    shared through a key, or another engine completes it: the Token returned is the one
    get_token reads afterwards."""
    async with Engine(store_url) as engine:
        tagged = await engine.trigger("approve-with-timeout", {"tags": ["refund", "eu"]})
        keyed = [await engine.trigger("shared-approval", {"order": 7}) for _ in range(2)]
        elsewhere = await engine.trigger("echo", None)
        waiting = {r.id: await engine.wait_for(r.id, ["WAITING"]) for r in [tagged, *keyed]}
        waiting[elsewhere.id] = await engine.wait_for(elsewhere.id, ["WAITING"])
        assert waiting[tagged.id].waiting_token_id in engine._runner._paused  # kept at its pause

        other = Engine(store_url)  # completes without having paused anything
        try:
            returned = [
                await engine.complete_token(waiting[tagged.id].waiting_token_id, {"ok": 1}),
                await engine.complete_token(waiting[keyed[0].id].waiting_token_id, "yes"),
                await other.complete_token(waiting[elsewhere.id].waiting_token_id, [1]),
            ]
        finally:
            await other.stop()
        for token in returned:
            assert token.status == TokenStatus.COMPLETED
            assert token == await engine.get_token(token.id)
        assert returned[0].tags == ("refund", "eu") and returned[0].run_id == tagged.id
        assert returned[1].idempotency_key == "approve-7"
