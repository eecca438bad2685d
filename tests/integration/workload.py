"""The task the integration tests run, in the test process and in their subprocesses.

Every execution of a step appends one JSON line to a log file and returns a fresh nonce, so a
test can tell from the log how often each step really ran and from the store which execution
was recorded. The log path travels in the run's payload: the task needs no globals, and any
process that imports this module can execute (or resume) a run.

Imported as `workload` by the scripts next to it (their directory is sys.path[0]) and as
`tests.integration.workload` by the tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

from hitl_desktop.engine import GroupResult, task, wait

TASK = "fault-cycle"
TAG = "fault-cycle"
WAITS = ("token", "all", "any")
"""How a run waits: on one token (wait.for_token), or on two at once (wait.for_all,
wait.for_any)."""
GROUP_TIMEOUTS = (0.3, 60.0)
"""A group wait's own deadline, in seconds, in turn: the short one is outlived by most kills
that land while the run waits (the group times out while no engine runs, or as one starts),
the long one never is (the group completes)."""


def append(log_path: str, entry: dict[str, Any]) -> None:
    """Append one line with a single write on an O_APPEND descriptor.

    One write() of a short line is not interleaved with other writers' lines, and a SIGKILL
    cannot leave half of it behind; fsync is not needed because the kernel keeps the page
    when only the process dies.
    """
    line = json.dumps({**entry, "pid": os.getpid(), "t": time.time()}) + "\n"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def execute_step(log_path: str, key: str, step: str, decision: Any) -> dict[str, Any]:
    """The body of steps "a" and "b": log this execution, return its nonce."""
    nonce = uuid.uuid4().hex
    append(
        log_path, {"kind": "step", "run": key, "step": step, "nonce": nonce, "decision": decision}
    )
    return {"nonce": nonce, "decision": decision}


async def held_step(
    log_path: str, key: str, step: str, decision: Any, hold: float
) -> dict[str, Any]:
    """Like execute_step, but logs its start and then holds the run EXECUTING for *hold* s."""
    append(log_path, {"kind": "step-start", "run": key, "step": step})
    await asyncio.sleep(hold)
    return execute_step(log_path, key, step, decision)


@task(TASK)
async def fault_cycle(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """trigger → step a → pause on a token (or on two, for all or any of them) → resume with
    the decision → step b → done."""
    key, log_path, hold = payload["key"], payload["log"], payload.get("hold", 0)
    if hold:
        a = await ctx.step("a", held_step, log_path, key, "a", None, hold)
    else:
        a = await ctx.step("a", execute_step, log_path, key, "a", None)
    mode, timeout = payload.get("wait", "token"), payload.get("timeout")
    if mode == "token":
        token = await wait.create_token(timeout="1h", tags=[TAG])
        result = await wait.for_token(token)
        decision: Any = result.output if result.ok else {"timed_out": True}
    else:
        members = [await wait.create_token(timeout="1h", tags=[TAG]) for _ in range(2)]
        waiter = wait.for_all if mode == "all" else wait.for_any
        decision = describe(await waiter(members, timeout=timeout))
    b = await ctx.step("b", execute_step, log_path, key, "b", decision)
    return {"a": a["nonce"], "b": b["nonce"], "decision": decision}


def describe(got: GroupResult) -> dict[str, Any]:
    """A group wait's result as JSON: step "b" records it, the checker compares it."""
    return {
        "timed_out": got.timed_out,
        "first": None if got.first is None else got.first.token_id,
        "results": [[r.token_id, str(r.status), r.output] for r in got.results],
    }


def wait_of(index: int) -> dict[str, Any]:
    """How run r<index> waits (payload's *mode* and *timeout*): the modes in turn, and for a
    group the timeouts in turn, round after round."""
    mode = WAITS[index % len(WAITS)]
    timeout = GROUP_TIMEOUTS[index // len(WAITS) % len(GROUP_TIMEOUTS)]
    return {"mode": mode, "timeout": None if mode == "token" else timeout}


def payload(
    key: str, log_path: str, hold: float = 0, mode: str = "token", timeout: float | None = None
) -> dict[str, Any]:
    """A run's payload; *hold* > 0 makes step "a" take that long (async, logging its start);
    *mode*, one of WAITS, is how it waits, a group for at most *timeout* seconds (None: the
    engine's default)."""
    return {"key": key, "log": log_path, "hold": hold, "wait": mode, "timeout": timeout}
