"""hitl-desktop: step → wait.create_token / wait.for_token → step, completed with complete_token.

The application learns that a run is waiting from the engine's event stream (RunPaused carries
the token id) and that it finished from RunCompleted, as the console does. Store: a SQLite file,
WAL, synchronous=FULL (the engine's default, set here explicitly).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from common import SYNCHRONOUS_NAMES, TOKEN_TIMEOUT_S, main

from hitl_desktop.engine import Engine, RunCompleted, RunFailed, RunPaused, task, wait

SYNCHRONOUS = "FULL"


def add(x: int, y: int) -> int:
    return x + y


@task("peer-cycle")
async def cycle(ctx: Any, x: int) -> int:
    a = await ctx.step("a", add, x, 1)
    token = await wait.create_token(timeout=TOKEN_TIMEOUT_S)
    decision = await wait.for_token(token)
    return await ctx.step("b", add, a, decision.output)


class Hitl:
    name = "hitl"

    async def start(self, path: Path) -> None:
        self.engine = Engine(f"sqlite:///{path}", synchronous=SYNCHRONOUS)
        await self.engine.start()
        self.futures: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self.stream = self.engine.events()
        await self.stream.__aenter__()
        self.router = asyncio.create_task(self.route())

    def future(self, kind: str, run_id: str) -> asyncio.Future[Any]:
        fut = self.futures.get((kind, run_id))
        if fut is None:
            fut = self.futures[(kind, run_id)] = asyncio.get_running_loop().create_future()
        return fut

    async def route(self) -> None:
        """One subscriber routes events to the runs' futures, as an application's UI would."""
        async for event in self.stream:
            if isinstance(event, RunPaused):
                self.future("paused", event.run_id).set_result(event.token_id)
            elif isinstance(event, RunCompleted):
                self.future("done", event.run_id).set_result(event.output)
            elif isinstance(event, RunFailed):
                error = RuntimeError(f"run {event.run_id} failed: {event.error}")
                for kind in ("paused", "done"):
                    fut = self.future(kind, event.run_id)
                    if not fut.done():
                        fut.set_exception(error)

    async def wait(self, kind: str, run_id: str) -> Any:
        try:
            return await self.future(kind, run_id)
        finally:
            self.futures.pop((kind, run_id), None)

    async def begin(self, i: int) -> tuple[str, str]:
        run = await self.engine.trigger("peer-cycle", i)
        token_id = await self.wait("paused", run.id)
        return run.id, token_id

    async def decide(self, handle: tuple[str, str], value: int) -> Any:
        run_id, token_id = handle
        done = self.future("done", run_id)  # registered before the decision can finish the run
        await self.engine.complete_token(token_id, value)
        try:
            return await done
        finally:
            self.futures.pop(("done", run_id), None)

    async def settings(self) -> dict[str, Any]:
        def pragmas(tx: Any) -> tuple[int, str]:
            # Private: the store thread's cursor, only to read its connection's settings.
            sync = tx.cursor.execute("PRAGMA synchronous").fetchone()[0]
            journal = tx.cursor.execute("PRAGMA journal_mode").fetchone()[0]
            return sync, journal

        sync, journal = await self.engine.db.executor.read(pragmas)
        return {"synchronous": SYNCHRONOUS_NAMES.get(sync, sync), "journal_mode": journal}

    async def stop(self) -> None:
        self.router.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.router
        await self.stream.__aexit__(None, None, None)
        await self.engine.stop()


if __name__ == "__main__":
    main(Hitl())
