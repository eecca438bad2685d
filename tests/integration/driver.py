"""Fault-injection driver: `python driver.py STORE_PATH LOG_PATH N_RUNS [DEADLINE_S]`.

Starts an engine on the store, makes sure the runs r0..rN-1 exist (waiting on one token, or on
two with wait.for_all or wait.for_any, in turn: workload.wait_of), and completes every token it
sees WAITING until all N runs are COMPLETED and no token is left WAITING (exit 0): a for_any
run ends with its other token still open, a timed-out group with both. It is idempotent, so a
test may SIGKILL it at any moment and start it again: `start()` takes over what the killed
engine was executing, triggers with a used idempotency key return the existing run, and
completing a token someone already completed raises TokenAlreadyFinished, which is expected
here.

Each completion is logged twice: "complete-try" with the nonce *before* complete_token (a
kill may land between its commit and the next line) and "completed" or "already" after it
returns. Exit codes: 0 all runs completed, 3 deadline passed, 4 a run ended otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from workload import TAG, TASK, append, payload, wait_of

from hitl_desktop.engine import Engine, RunStatus, TokenAlreadyFinished

DONE, GAVE_UP, RUN_ENDED_BADLY = 0, 3, 4


async def drive(store_path: str, log_path: str, n_runs: int, deadline_s: float) -> int:
    deadline = time.monotonic() + deadline_s
    append(log_path, {"kind": "driver-start"})
    engine = Engine(f"sqlite:///{store_path}")
    await engine.start()
    try:
        for i in range(n_runs):
            key = f"r{i}"
            await engine.trigger(TASK, payload(key, log_path, **wait_of(i)), idempotency_key=key)
        while time.monotonic() < deadline:
            waiting = await engine.list_tokens(status="WAITING", tags=[TAG])
            for token in waiting:
                nonce = uuid.uuid4().hex
                entry = {"token": token.id, "nonce": nonce}
                append(log_path, {"kind": "complete-try", **entry})
                try:
                    await engine.complete_token(token.id, {"nonce": nonce, "by": os.getpid()})
                except TokenAlreadyFinished:
                    append(log_path, {"kind": "already", **entry})
                else:
                    append(log_path, {"kind": "completed", **entry})
            runs = await engine.list_runs(task=TASK, limit=n_runs + 10)
            ended = [r for r in runs if r.status in (RunStatus.FAILED, RunStatus.CANCELED)]
            if ended:
                for r in ended:
                    print(f"run {r.id} {r.status}: {r.error}", file=sys.stderr)
                return RUN_ENDED_BADLY
            finished = all(r.status == RunStatus.COMPLETED for r in runs)
            if len(runs) >= n_runs and finished and not waiting:
                append(log_path, {"kind": "driver-done"})
                return DONE
            await asyncio.sleep(0.01)
        print(f"gave up after {deadline_s} s: {[(r.id, r.status) for r in runs]}", file=sys.stderr)
        return GAVE_UP
    finally:
        await engine.stop()


def main(argv: list[str]) -> int:
    store_path, log_path, n_runs = argv[1], argv[2], int(argv[3])
    deadline_s = float(argv[4]) if len(argv) > 4 else 60.0
    return asyncio.run(drive(store_path, log_path, n_runs, deadline_s))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
