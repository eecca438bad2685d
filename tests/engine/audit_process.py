"""A reviewer process for test_audit_chain: its own Engine on a shared store (executing
nothing: the test's engine resumes the runs), working through its share of the decisions.

    python -m tests.engine.audit_process STORE_URL PLAN_FILE

PLAN_FILE is a JSON list of [action, id]: approve / reject complete a token with
{"approve": true|false}, decide-approve / decide-reject decide it (Engine.decide), cancel
cancels a run. The process prints "ready" once its store is open and starts on the first line
it reads from stdin, so that every process starts together; it ends printing how many of each
action it took, as JSON. Any error ends it non-zero with the traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hitl_desktop.engine import Engine, task, wait

BATCH = 8
"""Decisions in flight at once in one process: more writers contend for the chain's head."""


@task("audited-chain", audit=True)
async def audited_chain(ctx: Any, payload: Any) -> Any:
    token = await wait.create_token(timeout=payload.get("timeout", "1h"))
    return (await wait.for_token(token)).output


async def act(engine: Engine, action: str, target: str) -> None:
    if action in ("approve", "reject"):
        await engine.complete_token(target, {"approve": action == "approve"})
    elif action in ("decide-approve", "decide-reject"):
        await engine.decide(target, {"decision": action.removeprefix("decide-")})
    elif action == "cancel":
        if not await engine.cancel(target, "not needed"):
            raise RuntimeError(f"run {target} had already finished when it was canceled")
    else:
        raise ValueError(f"unknown action {action!r} for {target}")


async def main(url: str, plan: list[list[str]]) -> Counter[str]:
    engine = Engine(url, tasks=[audited_chain], execute=False)
    await engine.open()
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        for start in range(0, len(plan), BATCH):
            await asyncio.gather(*(act(engine, a, t) for a, t in plan[start : start + BATCH]))
    finally:
        await engine.stop()
    return Counter(action for action, _ in plan)


if __name__ == "__main__":
    url, plan_file = sys.argv[1:3]
    done = asyncio.run(main(url, json.loads(Path(plan_file).read_text())))
    print(json.dumps(done), flush=True)
