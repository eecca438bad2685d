"""The cycle both engine benchmarks time: a run steps, waits on a token, then steps again once
the token is decided; a plain one completed with `complete_token`, a review (a task declared
`audit=True`, a requirement with a rule, one approval and the hash seen) decided with `decide`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hitl_desktop.engine import (
    Engine,
    EventStream,
    Requirement,
    RunCompleted,
    RunFailed,
    RunPaused,
    task,
    wait,
)

PLAIN_TASK = "bench-plain"
REVIEW_TASK = "bench-review"
SEEN = "5e" * 32
"""The hash of what the reviewer was shown (any 64 hex digits: the store compares it)."""
EVENT_TIMEOUT_S = 60.0
"""A cycle's event that has not come by then is lost: the benchmark stops with an error."""


def _add(x: int, y: int) -> int:
    return x + y


@task(PLAIN_TASK)
async def plain_task(ctx: Any, payload: int) -> Any:
    a = await ctx.step("a", _add, payload, 1)
    token = await wait.create_token(timeout="1h")
    result = await wait.for_token(token)
    return await ctx.step("b", _add, a, result.output)


@task(REVIEW_TASK, audit=True)
async def review_task(ctx: Any, payload: int) -> Any:
    a = await ctx.step("a", _add, payload, 1)
    requirement = Requirement(rule="bench", approvals=1, seen=SEEN)
    token = await wait.create_token(timeout="1h", requirement=requirement)
    result = await wait.for_token(token)
    return await ctx.step("b", _add, a, result.output["value"])


async def next_event(stream: EventStream, kind: type, run_id: str) -> Any:
    """The next event of *kind* for *run_id* (a failed run is an error)."""
    async with asyncio.timeout(EVENT_TIMEOUT_S):
        async for event in stream:
            if event.run_id != run_id:
                continue
            if isinstance(event, kind):
                return event
            if isinstance(event, RunFailed):
                raise RuntimeError(f"run {run_id} failed: {event.error}\n{event.traceback}")
    raise RuntimeError("the event stream closed")


async def cycle(engine: Engine, stream: EventStream, i: int, review: bool) -> tuple[float, float]:
    """One run from trigger to RunCompleted; (ms from the deciding call returning to
    RunCompleted, ms from the call itself to RunCompleted)."""
    clock = time.perf_counter
    run = await engine.trigger(REVIEW_TASK if review else PLAIN_TASK, i)
    paused = await next_event(stream, RunPaused, run.id)
    called = clock()
    if review:
        await engine.decide(paused.token_id, {"decision": "approve", "value": i}, seen=SEEN)
    else:
        await engine.complete_token(paused.token_id, i)
    decided = clock()
    await next_event(stream, RunCompleted, run.id)
    done = clock()
    return (done - decided) * 1000.0, (done - called) * 1000.0
