"""Deadlines hold where completions commit, and timers see the wall clock across a suspend."""

import asyncio

import pytest
import sqlalchemy as sa

from hitl_desktop.engine import (
    Engine,
    TokenAlreadyFinished,
    TokenExpired,
    TokenStatus,
    TokenTimedOut,
    task,
    wait,
)
from hitl_desktop.engine.store.values import INLINE_LIMIT

START = 2_000_000.0
HOUR = 3600.0


@task("deadline-approval")
async def deadline_approval(ctx, payload):
    token = await wait.create_token(timeout="1h")
    result = await wait.for_token(token)
    return {"ok": result.ok, "output": result.output}


def _clock() -> tuple[list[float], object]:
    now = [START]
    return now, lambda: now[0]


async def _waiting(engine: Engine) -> tuple[str, str]:
    run = await engine.trigger("deadline-approval")
    waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
    assert waiting.waiting_token_id is not None
    return run.id, waiting.waiting_token_id


def _count_blobs(store_url: str) -> int:
    db = sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with db.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM hitl_blobs")).scalar_one())
    finally:
        db.dispose()


async def test_a_completion_past_the_deadline_is_refused_and_times_the_token_out(store_url: str):
    now, clock = _clock()
    async with Engine(store_url, clock=clock) as engine:
        run_id, token_id = await _waiting(engine)
        # 1.5 s late, and no timer has fired: the monotonic hour has not passed.
        now[0] += HOUR + 1.5
        async with engine.events() as stream:
            expired = r"expired at 1970-01-24T04:33:20\+00:00; nothing was decided"
            with pytest.raises(TokenExpired, match=expired):
                await engine.complete_token(token_id, {"approved": True})
            async with asyncio.timeout(5):
                event = await anext(e async for e in stream if isinstance(e, TokenTimedOut))
        assert event.token_id == token_id
        token = await engine.get_token(token_id)
        assert token.status == TokenStatus.TIMED_OUT and token.output is None
        done = await engine.wait_for(run_id, ["COMPLETED", "FAILED"], timeout=5)
        assert done.output == {"ok": False, "output": None}  # the run saw the expiry at once
        with pytest.raises(TokenAlreadyFinished, match="already TIMED_OUT"):
            await engine.complete_token(token_id, {"approved": True})


async def test_an_expired_token_is_refused_to_a_process_that_only_completes(store_url: str):
    """As `hitl complete` does: an engine that is not started completes tokens; the expiry
    it commits queues the run for the engine that executes it."""
    now, clock = _clock()
    executing = Engine(store_url, clock=clock)
    await executing.start()
    try:
        run_id, token_id = await _waiting(executing)
        now[0] += HOUR + 1.5
        completing = Engine(store_url, clock=clock)
        try:
            with pytest.raises(TokenExpired) as refused:
                await completing.complete_token(token_id, {"approved": True})
        finally:
            await completing.stop()
        assert isinstance(refused.value, TokenAlreadyFinished)  # callers catching it see it too
        assert refused.value.status == "TIMED_OUT"
        assert refused.value.expires_at == START + HOUR
        done = await executing.wait_for(run_id, ["COMPLETED", "FAILED"], timeout=10)
        assert done.output == {"ok": False, "output": None}
    finally:
        await executing.stop()


async def test_an_expired_completion_leaves_no_large_output_behind(store_url: str):
    now, clock = _clock()
    async with Engine(store_url, clock=clock) as engine:
        _, token_id = await _waiting(engine)
        now[0] += HOUR
        with pytest.raises(TokenExpired):  # exactly at the deadline is too late
            await engine.complete_token(token_id, {"text": "x" * (INLINE_LIMIT + 1)})
    assert _count_blobs(store_url) == 0


async def test_a_completion_just_before_the_deadline_succeeds(store_url: str):
    now, clock = _clock()
    async with Engine(store_url, clock=clock) as engine:
        run_id, token_id = await _waiting(engine)
        now[0] += HOUR - 0.5
        token = await engine.complete_token(token_id, {"approved": True})
        assert token.status == TokenStatus.COMPLETED
        done = await engine.wait_for(run_id, ["COMPLETED"], timeout=5)
        assert done.output == {"ok": True, "output": {"approved": True}}


async def test_a_deadline_passed_during_a_suspend_times_out_after_resume(store_url: str):
    """The machine sleeps for two hours: the wall clock jumps, the loop's monotonic clock
    (which call_later counts) barely moves."""
    now, clock = _clock()
    async with Engine(store_url, clock=clock, timer_recheck=0.05) as engine:
        run_id, token_id = await _waiting(engine)
        await asyncio.sleep(0.2)  # several rechecks before the deadline: none times it out
        assert (await engine.get_token(token_id)).status == TokenStatus.WAITING
        now[0] += 2 * HOUR
        done = await engine.wait_for(run_id, ["COMPLETED", "FAILED"], timeout=5)
        assert done.output == {"ok": False, "output": None}
        assert (await engine.get_token(token_id)).status == TokenStatus.TIMED_OUT


async def test_the_timer_sleeps_no_longer_than_the_recheck_interval(tmp_path):
    _, clock = _clock()
    async with Engine(f"sqlite:///{tmp_path / 'runs.db'}", clock=clock) as engine:
        await _waiting(engine)
        background = engine._background
        assert background._timer is not None
        loop = asyncio.get_running_loop()
        assert background._timer.when() - loop.time() <= background.timer_recheck == 30.0


def test_a_bad_recheck_interval_is_named():
    with pytest.raises(ValueError, match="timer_recheck must be a positive number"):
        Engine("sqlite:///unused.db", timer_recheck=0)
