"""Executing runs: one asyncio task per run while it has work to do, replaying its history
through a RunContext (context.py) and ending it with one commit (completed, failed, or
paused on a token).

The runner talks to its engine only through RunHost; the context talks to the runner.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback as tb
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from . import serde
from .context import RunContext, Suspend, current
from .errors import TaskNotFound
from .store import LostOwnership, SystemDatabase
from .store.records import Committed, EventRow, Resume, Writes
from .tasks import Task

log = logging.getLogger("hitl_desktop.engine")

PAUSED_HISTORIES = 256
"""Histories of runs this engine paused, kept to resume them without reading them back."""
PAUSED_HISTORY_BYTES = 16 * 1024
"""A larger history (payload and step results) is read back from the store instead."""


class RunHost(Protocol):
    """What executing runs need of their engine."""

    id: str
    clock: Callable[[], float]
    max_payload_bytes: int
    default_token_timeout: float

    @property
    def db(self) -> SystemDatabase: ...

    def publish(self, events: Iterable[EventRow]) -> None:
        """Announce committed changes to this engine's subscribers."""

    def note_deadline(self, deadline: float | None) -> None:
        """A token with this deadline is waiting: keep the timer for it."""


class Runner:
    """The runs this engine executes now, and the histories of those it paused."""

    def __init__(self, host: RunHost, tasks: dict[str, Task]) -> None:
        self.host = host
        self.tasks = tasks
        self.task_names = frozenset(tasks)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        """Set while the engine stops: a commit landing now starts no new run."""
        self._paused: OrderedDict[str, Resume] = OrderedDict()  # by the token each waits on

    def spawn(self, resume: Resume) -> None:
        if resume.run_id in self.running or self.stopping:
            return
        task = asyncio.create_task(self._execute(resume), name=f"hitl-run-{resume.run_id}")
        # _execute drops it from running itself: a done callback would cost the loop one
        # more iteration per run execution, after the next commit was queued.
        self.running[resume.run_id] = task

    def cancel(self, run_id: str) -> None:
        running = self.running.get(run_id)
        if running is not None:
            running.cancel()

    async def stop(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()  # a task cancelled before it began never ran its own cleanup

    # ------------------------------------------------------------ after a commit

    def absorb(self, out: Committed) -> None:
        """Publish what a commit changed and execute the runs it handed to this engine."""
        self.host.publish(out.events)
        for resume in out.resumed:
            self.spawn(resume)

    def committed(self, writes: Writes, out: Committed) -> None:
        """After a run's commit: keep the timer for its new tokens, announce what changed."""
        self.note_tokens(writes)
        self.host.publish(out.events)

    def note_tokens(self, writes: Writes) -> None:
        for token in writes.tokens:
            self.host.note_deadline(token.expires_at)

    def note_deadline(self, deadline: float) -> None:
        self.host.note_deadline(deadline)

    # ------------------------------------------------------------ paused histories

    def remember(self, token_id: str, history: Resume) -> None:
        """Keep the history of a run that paused on *token_id* here, for its resumption."""
        size = len(history.payload or "") + sum(len(r.result or "") for r in history.steps.values())
        if size > PAUSED_HISTORY_BYTES:
            return
        self._paused[token_id] = history
        if len(self._paused) > PAUSED_HISTORIES:
            self._paused.popitem(last=False)

    def take_paused(self, token_id: str) -> Resume | None:
        """The kept history of the run waiting on *token_id*, no longer kept."""
        return self._paused.pop(token_id, None)

    def keep_paused(self, token_id: str, history: Resume) -> None:
        """Keep again a history taken for a completion that was refused."""
        self._paused[token_id] = history

    # ------------------------------------------------------------ one execution

    async def _execute(self, resume: Resume) -> None:
        host = self.host
        found = self.tasks.get(resume.task)
        ctx = RunContext(self, resume)
        reset = current.set(ctx)
        try:
            if found is None:  # only claimed when known; guard against a racing registry change
                raise TaskNotFound(resume.task, list(self.tasks))
            output = await found.fn(ctx, serde.load(resume.payload))
            if ctx.diverged is not None:
                raise ctx.diverged
            text = serde.dump(output, f"the output of run {resume.run_id}", host.max_payload_bytes)
            writes = ctx.take_writes()
            await host.db.complete_run(
                resume.run_id,
                resume.task,
                host.id,
                writes,
                text,
                host.clock(),
                then=functools.partial(self.committed, writes),
            )
        except Suspend:
            return
        except LostOwnership as exc:
            log.warning("%s", exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            trace = tb.format_exc()
            # A divergence writes nothing the diverging code produced after it.
            writes = Writes() if ctx.diverged is not None else ctx.take_writes()
            try:
                await host.db.fail_run(
                    resume.run_id,
                    resume.task,
                    host.id,
                    writes,
                    error,
                    trace,
                    host.clock(),
                    then=functools.partial(self.committed, writes),
                )
            except LostOwnership as lost:
                log.warning("%s", lost)
                return
        finally:
            current.reset(reset)
            self.running.pop(resume.run_id, None)
