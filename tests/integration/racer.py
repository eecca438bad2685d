"""One side of the complete_token race: `python racer.py STORE IDENTITY TOKENS READY GO MODE`.

Opens the store (MODE "open", as the CLI does) or starts an engine on it (MODE "started", as a
second console would), writes READY and waits for the file GO to appear. GO holds an epoch
time: the racer completes the i-th token listed in the JSON file TOKENS with {"by": IDENTITY}
at that time + i × SPACING, so that the two racers hit every token at the same instant. Prints
one JSON line: which tokens it won, which it lost (TokenAlreadyFinished, with the status it
reported) and any other error. A started racer waits for the runs it woke to finish before it stops.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import workload  # noqa: F401  (registers the task a started racer executes)

from hitl_desktop.engine import Engine, RunStatus, TokenAlreadyFinished

SPACING = 0.02  # seconds between two tokens' appointed instants


async def race(store: str, identity: str, tokens: Path, ready: Path, go: Path, mode: str) -> int:
    engine = Engine(f"sqlite:///{store}")
    await (engine.start() if mode == "started" else engine.open())
    try:
        token_ids = json.loads(tokens.read_text())
        ready.write_text(identity)
        deadline = time.monotonic() + 30
        while not go.exists():
            if time.monotonic() > deadline:
                print("no start signal within 30 s", file=sys.stderr)
                return 3
            await asyncio.sleep(0.001)
        start = float(go.read_text())
        won: list[str] = []
        lost: dict[str, str] = {}
        errors: dict[str, str] = {}
        runs: list[str] = []
        for i, token_id in enumerate(token_ids):
            # Both racers aim at the same instant for each token, so every token is contended.
            await asyncio.sleep(max(0.0, start + i * SPACING - time.time()))
            try:
                token = await engine.complete_token(token_id, {"by": identity})
            except TokenAlreadyFinished as exc:
                lost[token_id] = exc.status
            except Exception as exc:
                errors[token_id] = repr(exc)
            else:
                won.append(token_id)
                if token.run_id is not None:
                    runs.append(token.run_id)
        finished = 0
        if mode == "started":
            for run_id in runs:
                run = await engine.wait_for(run_id, [RunStatus.COMPLETED, RunStatus.FAILED], 20)
                finished += run.status == RunStatus.COMPLETED
        print(
            json.dumps(
                {
                    "identity": identity,
                    "won": won,
                    "lost": lost,
                    "errors": errors,
                    "finished_here": finished,
                }
            ),
            flush=True,
        )
        return 0
    finally:
        await engine.stop()


def main(argv: list[str]) -> int:
    store, identity, tokens, ready, go, mode = argv[1:7]
    return asyncio.run(race(store, identity, Path(tokens), Path(ready), Path(go), mode))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
