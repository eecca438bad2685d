"""The task test_groups drives, and a helper process for it:

    python -m tests.engine.group_process complete STORE_URL TOKENS_FILE
    python -m tests.engine.group_process serve STORE_URL

*complete* opens the store (executing nothing: the run resumes in whichever engine executes),
prints "ready", and on the first line it reads from stdin completes every token listed in
TOKENS_FILE (a JSON list) at once, so that two such processes complete their tokens at the
same moment; it prints how many it completed. *serve* starts an executing engine, prints
"ready" and executes runs until it is killed (or 120 s pass).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from hitl_desktop.engine import Engine, GroupResult, task, wait


def describe(got: GroupResult) -> dict[str, Any]:
    return {
        "timed_out": got.timed_out,
        "first": None if got.first is None else got.first.token_id,
        "results": [[r.token_id, str(r.status), r.ok, r.output] for r in got.results],
    }


async def after_step(
    log: str | None, run_id: str, hold: str | None, seen: dict[str, Any]
) -> dict[str, Any]:
    """Logs each execution (run and pid); holds while the file *hold* exists (a kill lands)."""
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:  # one write of a short line: not interleaved with other processes' lines
            os.write(fd, (json.dumps({"run": run_id, "pid": os.getpid()}) + "\n").encode())
        finally:
            os.close(fd)
    for _ in range(1200):  # bounded: 60 s
        if hold is None or not Path(hold).exists():
            break
        await asyncio.sleep(0.05)
    return {"seen": seen, "nonce": uuid.uuid4().hex}


@task("grouped")
async def grouped(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Creates payload["n"] tokens (each with its timeout from payload["member_timeouts"]),
    or takes the ids in payload["tokens"]; waits for any / all of them in payload["order"];
    then a recorded step; then, with payload["then_wait"], waits on one more token."""
    ids = payload.get("tokens")
    if ids is None:
        timeouts = payload.get("member_timeouts") or ["1h"] * payload.get("n", 2)
        ids = [(await wait.create_token(timeout=t, tags=["member"])).id for t in timeouts]
    order = payload.get("order") or list(range(len(ids)))
    members = [ids[i] for i in order]
    waiter = wait.for_any if payload["mode"] == "any" else wait.for_all
    got = await waiter(members, timeout=payload.get("timeout", "1h"))
    seen = describe(got)
    log, hold = payload.get("log"), payload.get("hold")
    after = await ctx.step("after", after_step, log, ctx.run_id, hold, seen)
    if payload.get("then_wait"):
        await wait.for_token(await wait.create_token(timeout="1h", tags=["final"]))
    return {"group": describe(got), "after": after, "members": members}


async def complete(url: str, tokens: list[str]) -> int:
    engine = Engine(url, tasks=[grouped], execute=False)
    await engine.open()
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await asyncio.gather(*(engine.complete_token(t, {"by": os.getpid()}) for t in tokens))
    finally:
        await engine.stop()
    return len(tokens)


async def serve(url: str) -> None:
    engine = Engine(url, tasks=[grouped])
    await engine.start()
    try:
        print("ready", flush=True)
        await asyncio.sleep(120)
    finally:
        await engine.stop()


if __name__ == "__main__":
    if sys.argv[1] == "complete":
        done = asyncio.run(complete(sys.argv[2], json.loads(Path(sys.argv[3]).read_text())))
        print(json.dumps({"completed": done}), flush=True)
    else:
        asyncio.run(serve(sys.argv[2]))
