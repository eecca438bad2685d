"""The Engine: runs tasks durably in the caller's event loop.

One engine per process and store. It executes runs as asyncio tasks only while they have work
to do; a waiting run is rows in the store and nothing else. Background work is three small
loops: a timer for the earliest token deadline, a watcher that notices what other processes
committed, and a heartbeat that also takes over runs whose engine died.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import traceback as tb
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from ..units.defaults import DEFAULT_TOKEN_TIMEOUT
from ..units.urls import async_url, redact_url, sqlite_database
from . import liveness, serde
from .context import RunContext, Suspend, current
from .errors import EngineNotStarted, OutputRefused, StoreNotUsable, TaskNotFound, TokenExpired
from .events import Event, EventHub, EventStream, event_from
from .models import (
    RUN_STATUSES,
    TOKEN_STATUSES,
    Run,
    RunStatus,
    Step,
    Token,
    TokenStatus,
    to_datetime,
)
from .store import files, migrate, store
from .store.records import Committed, EventRow, Resume, Writes
from .store.sql import (
    AsyncSaExecutor,
    Executor,
    Row,
    SqliteExecutor,
    write_retrying_conflicts,
)
from .store.store import LostOwnership
from .tasks import Task, TaskFn, registry

log = logging.getLogger("hitl_desktop.engine")

DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
PAUSED_HISTORIES = 256
"""Histories of runs this engine paused, kept to resume them without reading them back."""
PAUSED_HISTORY_BYTES = 16 * 1024
"""A larger history (payload and step results) is read back from the store instead."""
TIMER_RECHECK = 30.0
"""Longest sleep of the deadline timer before it compares the wall clock with the deadline."""
OWNER_SCAN_BEATS = 150
"""Heartbeats between two scans for executing runs whose owner is not registered (5 minutes
at the default 2 s)."""


class Engine:
    """A durable run engine on one store (a SQLite file or a PostgreSQL database)."""

    def __init__(
        self,
        url: str,
        *,
        tasks: Iterable[TaskFn] | None = None,
        default_token_timeout: str | float | timedelta = DEFAULT_TOKEN_TIMEOUT,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.05,
        heartbeat_interval: float = 2.0,
        lease: float = 30.0,
        max_recoveries: int = 20,
        timer_recheck: float = TIMER_RECHECK,
    ) -> None:
        """*clock* is the wall clock deadlines are kept in (epoch seconds). The deadline timer
        sleeps on the loop's monotonic clock, which stops while the machine is suspended: it
        wakes at least every *timer_recheck* seconds to compare *clock* with the deadline, so
        a token whose deadline passed during a suspend times out at most that long after the
        machine resumes."""
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise ValueError(f"synchronous must be FULL, NORMAL, EXTRA or OFF, not {synchronous!r}")
        self.url = url
        self.id = serde.new_id("eng")
        self.clock = clock
        self.default_token_timeout = serde.seconds(default_token_timeout)
        self.max_payload_bytes = max_payload_bytes
        self.synchronous = synchronous.upper()
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.lease = lease
        self.max_recoveries = max_recoveries
        if not timer_recheck > 0:
            raise ValueError(
                f"timer_recheck must be a positive number of seconds, not {timer_recheck!r}"
            )
        self.timer_recheck = timer_recheck
        self._tasks: dict[str, Task] = registry(tasks)
        self._task_names = frozenset(self._tasks)
        # None when no task checks outputs: completions then read nothing extra.
        self._output_checks: dict[str, Callable[[Any], object]] | None = {
            name: t.check_output for name, t in self._tasks.items() if t.check_output is not None
        } or None
        self._executor_: Executor | None = None
        self._opening = asyncio.Lock()
        self._hub = EventHub()
        self._started = False
        self._stopping = False
        self._running: dict[str, asyncio.Task[None]] = {}
        self._paused: OrderedDict[str, Resume] = OrderedDict()  # by the token each waits on
        self._background: list[asyncio.Task[None]] = []
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._last_event = 0
        self._data_version: int | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def _executor(self) -> Executor:
        if self._executor_ is None:
            raise EngineNotStarted()
        return self._executor_

    @property
    def started(self) -> bool:
        return self._started

    async def open(self) -> None:
        """Open the store and migrate it, without executing runs (enough for reads and
        completions, as the CLI does). start() calls it."""
        async with self._opening:  # callers racing the first open share its store
            if self._executor_ is None:
                self._executor_ = await self._open_executor()

    async def _open_executor(self) -> Executor:
        path = sqlite_database(self.url)
        executor: Executor
        if path is not None and files.is_file_store(path):
            await asyncio.to_thread(self._prepare_file, path)
        if path is not None:
            executor = SqliteExecutor(path, self.synchronous)
        else:
            executor = AsyncSaExecutor(async_url(self.url))
        try:
            revision = await executor.read(migrate.current_revision)
            if not migrate.is_current(revision):
                reason = await executor.read(migrate.refusal, revision)
                if reason is not None:
                    raise StoreNotUsable(redact_url(self.url), reason)
                if path is not None:
                    await asyncio.to_thread(migrate.upgrade_sqlite, path, self.synchronous)
                else:
                    assert isinstance(executor, AsyncSaExecutor)
                    await executor.run_sync(migrate.upgrade)
        except BaseException:
            await executor.close()  # no store thread or connection outlives a failed open
            raise
        return executor

    def _prepare_file(self, path: str) -> None:
        """Before the store's own connection sets its pragmas: create a new store file private,
        or check that an existing file may be used as a store (a refused file is left exactly
        as it was) and tighten its permissions."""
        try:
            if files.create_private(path):
                return  # empty: nothing to refuse, nothing to tighten
        except OSError as exc:
            raise StoreNotUsable(
                redact_url(self.url), f"its file cannot be created: {exc.strerror or exc}"
            ) from exc
        reason = migrate.sqlite_refusal(path)
        if reason is not None:
            raise StoreNotUsable(redact_url(self.url), reason)
        files.tighten(path)

    async def start(self) -> None:
        """Open the store, recover what crashed, time out what expired, and start executing."""
        if self._started:
            return
        self._stopping = False
        await self.open()
        now = self.clock()
        await self._executor.write(
            store.register_engine,
            {"id": self.id, **liveness.identity(), "started_at": now, "heartbeat_at": now},
        )
        self._last_event = await self._executor.read(store.last_event_id)
        self._started = True
        await self._recover()
        await self._fire_timers()
        await self._claim_queued()
        self._background = [
            asyncio.create_task(self._watch(), name="hitl-watch"),
            asyncio.create_task(self._heartbeat(), name="hitl-heartbeat"),
        ]

    async def stop(self) -> None:
        """Stop executing: runs in flight are handed back to the store (QUEUED) for next time."""
        self._stopping = True  # a commit landing now starts no new run: it is handed back
        if self._timer is not None:
            self._timer.cancel()
        tasks = [*self._background, *self._running.values()]
        if self._timer_task is not None:
            tasks.append(self._timer_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        self._running.clear()  # a task cancelled before it began never ran its own cleanup
        if self._executor_ is not None:
            if self._started:
                await self._executor_.write(store.release, self.id, self.clock())
            await self._executor_.close()
            self._executor_ = None
        self._started = False
        self._stopping = False
        self._hub.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ runs

    async def trigger(
        self,
        task: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: str | float | timedelta | None = None,
        tags: Sequence[str] = (),
    ) -> Run:
        """Create a run of *task*. A started engine executes it at once; otherwise it is QUEUED
        for whichever engine starts next. With an *idempotency_key*, a run already holding
        the key (within its TTL) is returned instead, with `is_cached=True`."""
        found = self._tasks.get(task)
        if found is None:
            raise TaskNotFound(task, list(self._tasks))
        text = serde.dump(payload, f"the payload of a {task!r} run", self.max_payload_bytes)
        if self._executor_ is None:
            await self.open()
        now = self.clock()
        tag_list = list(tags)
        started = self._started
        run_id = serde.new_id("run")
        row = {
            "id": run_id,
            "task": task,
            "status": "EXECUTING" if started else "QUEUED",
            "output": None,
            "error": None,
            "traceback": None,
            "tags": json.dumps(tag_list) if tag_list else "[]",
            "idempotency_key": idempotency_key,
            "idempotency_expires_at": (
                None if idempotency_key_ttl is None else now + serde.seconds(idempotency_key_ttl)
            ),
            "owner": self.id if started else None,
            "waiting_token_id": None,
            "recoveries": 0,
            "code_hash": found.code_hash,
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
        }
        if idempotency_key is None:
            # Queued at once (SQLite): the Run is built while the store thread commits, and
            # the run starts as soon as the commit is known.
            pending = self._executor.write(
                store.trigger,
                row,
                text,
                now,
                self.id,
                then=functools.partial(self._triggered, Resume(run_id, task, text, {}, {})),
            )
            created = to_datetime(now)
            assert created is not None
            run = Run(
                id=run_id,
                task=task,
                status=RunStatus.EXECUTING if started else RunStatus.QUEUED,
                payload=serde.load(text),
                output=None,
                error=None,
                traceback=None,
                tags=tuple(tag_list),
                created_at=created,
                updated_at=created,
                finished_at=None,
                waiting_token_id=None,
                idempotency_key=None,
            )
            await pending
            return run
        out = await write_retrying_conflicts(self._executor, store.trigger, row, text, now, self.id)
        if out.value is not None:
            existing, payload_text, output_text = await self._executor.read(
                store.get_run, out.value["id"]
            )
            return _run(existing, payload_text, output_text, cached=True)
        self._triggered(Resume(run_id, task, text, {}, {}), out)
        return _run(row, text, None)

    def _triggered(self, resume: Resume, out: Committed) -> None:
        self._publish(out.events)
        if self._started:
            self._spawn(resume)

    async def get_run(self, run_id: str) -> Run:
        row, payload, output = await self._executor_or_open(store.get_run, run_id)
        return _run(row, payload, output)

    async def list_runs(
        self,
        status: RunStatus | str | None = None,
        *,
        task: str | None = None,
        limit: int = 100,
        before: float | None = None,
    ) -> list[Run]:
        """Runs, newest first; *before* (epoch seconds) pages through older ones."""
        rows = await self._executor_or_open(
            store.list_runs,
            None if status is None else RunStatus(status).value,
            task,
            limit,
            before,
        )
        return [_run(r, p, o) for r, p, o in rows]

    async def get_steps(self, run_id: str) -> list[Step]:
        """The run's recorded history: steps, token creations and waits, with timings."""
        rows = await self._executor_or_open(store.get_steps, run_id)
        return [_step(r, text) for r, text in rows]

    async def count_runs(self) -> dict[str, int]:
        """How many runs there are in each status."""
        counts: dict[str, int] = await self._executor_or_open(store.count_runs)
        return counts

    async def running_engines(self) -> list[str]:
        """Ids of the other engines executing runs on this store now (alive, not stopped):
        the CLI leaves a resumed run to them rather than executing it itself."""
        rows = await self._executor_or_open(store.live_engines)
        now = self.clock()
        return [
            str(row["id"])
            for row in rows
            if row["id"] != self.id and not liveness.is_dead(row, now, self.lease)
        ]

    async def cancel(self, run_id: str, reason: str | None = None) -> bool:
        """Cancel a run that has not finished; False if it had already finished."""
        out = await self._executor_or_open(
            store.cancel, run_id, reason, self.clock(), self.id, write=True
        )
        running = self._running.get(run_id)
        if running is not None:
            running.cancel()
        self._publish(out.events)
        return out.value is None

    # ------------------------------------------------------------ tokens

    async def complete_token(self, token_id: str, output: Any = None) -> Token:
        """Complete a WAITING token and resume its run. Exactly once: a token that is already
        COMPLETED or TIMED_OUT raises `TokenAlreadyFinished` and nothing changes.

        A token past its deadline cannot be completed: this times it out (its run resumes to
        handle the expiry) and raises `TokenExpired`. When the task of the token's run
        declares `check_output`, the output is checked first: `OutputRefused` if the check
        raises, and the token and run keep waiting."""
        text = serde.dump(output, f"the output for token {token_id}", self.max_payload_bytes)
        owner = self.id if self._started else None
        known = self._paused.pop(token_id, None)
        try:
            out = await self._executor_or_open(
                store.complete_token,
                token_id,
                text,
                owner,
                self._task_names,
                self.clock(),
                self.id,
                known,
                self._output_checks,
                write=True,
                then=self._absorb,
            )
        except OutputRefused:
            if known is not None:  # still valid: the run still waits on the token
                self._paused[token_id] = known
            raise
        if out.expired_at is not None:  # timed out by this very commit
            raise TokenExpired(token_id, out.expired_at)
        return _token_from_row(out.value, text)

    async def get_token(self, token_id: str) -> Token:
        row, output = await self._executor_or_open(store.get_token, token_id)
        return _token_from_row(row, output)

    async def list_tokens(
        self,
        status: TokenStatus | str | None = None,
        tags: Sequence[str] = (),
        *,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Token]:
        """Tokens, newest first, filtered by status, by run, and by tags (all must match)."""
        rows = await self._executor_or_open(
            store.list_tokens,
            None if status is None else TokenStatus(status).value,
            list(tags),
            run_id,
            limit,
        )
        return [_token_from_row(r, o) for r, o in rows]

    # ------------------------------------------------------------ events

    def events(self) -> EventStream:
        """Every event from now on, including changes other processes make to the store:
        `async for event in engine.events(): ...`."""
        return self._hub.stream()

    async def wait_for(
        self, run_id: str, statuses: Iterable[RunStatus | str] = (), timeout: float = 30.0
    ) -> Run:
        """Wait until the run reaches one of *statuses* (default: any finished or WAITING)."""
        wanted = {RunStatus(s) for s in statuses} or {
            RunStatus.WAITING,
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CANCELED,
        }
        async with self.events() as stream:
            async with asyncio.timeout(timeout):
                while True:
                    run = await self.get_run(run_id)
                    if run.status in wanted:
                        return run
                    event = await stream.__anext__()
                    while event.run_id != run_id:
                        event = await stream.__anext__()

    # ------------------------------------------------------------ execution

    def _spawn(self, resume: Resume) -> None:
        if resume.run_id in self._running or self._stopping:
            return
        task = asyncio.create_task(self._execute(resume), name=f"hitl-run-{resume.run_id}")
        # _execute drops it from _running itself: a done callback would cost the loop one
        # more iteration per run execution, after the next commit was queued.
        self._running[resume.run_id] = task

    async def _execute(self, resume: Resume) -> None:
        found = self._tasks.get(resume.task)
        ctx = RunContext(self, resume)
        reset = current.set(ctx)
        try:
            if found is None:  # only claimed when known; guard against a racing registry change
                raise TaskNotFound(resume.task, list(self._tasks))
            output = await found.fn(ctx, serde.load(resume.payload))
            if ctx.diverged is not None:
                raise ctx.diverged
            text = serde.dump(output, f"the output of run {resume.run_id}", self.max_payload_bytes)
            writes = ctx.take_writes()
            await self._executor.write(
                store.finish,
                resume.run_id,
                self.id,
                writes,
                "COMPLETED",
                text,
                None,
                None,
                self.clock(),
                then=functools.partial(self._committed, writes),
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
                await self._executor.write(
                    store.finish,
                    resume.run_id,
                    self.id,
                    writes,
                    "FAILED",
                    None,
                    error,
                    trace,
                    self.clock(),
                    then=functools.partial(self._committed, writes),
                )
            except LostOwnership as lost:
                log.warning("%s", lost)
                return
        finally:
            current.reset(reset)
            self._running.pop(resume.run_id, None)

    def _remember(self, token_id: str, history: Resume) -> None:
        """Keep the history of a run that paused on *token_id* here, for its resumption."""
        size = len(history.payload or "") + sum(len(r.result or "") for r in history.steps.values())
        if size > PAUSED_HISTORY_BYTES:
            return
        self._paused[token_id] = history
        if len(self._paused) > PAUSED_HISTORIES:
            self._paused.popitem(last=False)

    def _committed(self, writes: Writes, out: Committed) -> None:
        """After a run's commit: keep the timer for its new tokens, announce what changed."""
        self._note_tokens(writes)
        self._publish(out.events)

    def _absorb(self, out: Committed) -> None:
        self._publish(out.events)
        for resume in out.resumed:
            self._spawn(resume)

    def _publish(self, rows: Iterable[EventRow]) -> None:
        for row in rows:
            self._hub.publish(_event(row))

    # ------------------------------------------------------------ timers

    def _note_tokens(self, writes: Writes) -> None:
        for token in writes.tokens:
            self._note_deadline(token.expires_at)

    def _note_deadline(self, deadline: float | None) -> None:
        """Keep one timer, for the earliest deadline of any waiting token."""
        if deadline is None or not self._started:
            return
        if self._deadline is not None and self._deadline <= deadline and self._timer is not None:
            return
        self._deadline = deadline
        if self._timer is not None:
            self._timer.cancel()
        self._arm_timer(deadline)

    def _arm_timer(self, deadline: float) -> None:
        # call_later counts monotonic time, which stands still while the machine sleeps:
        # never sleep longer than timer_recheck without looking at the wall clock.
        delay = min(max(0.0, deadline - self.clock()), self.timer_recheck)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is not None and self._deadline > self.clock():
            self._arm_timer(self._deadline)  # a recheck, not the deadline yet
            return
        self._deadline = None
        if self._timer_task is None or self._timer_task.done():
            self._timer_task = asyncio.create_task(self._fire_timers(), name="hitl-timers")

    async def _fire_timers(self) -> None:
        out = await self._executor.write(
            store.time_out_due, self.id, self._task_names, self.clock()
        )
        self._absorb(out)
        self._note_deadline(out.value)

    # ------------------------------------------------------------ other processes

    async def _watch(self) -> None:
        """Notice commits made by other processes: events to relay, runs to pick up."""
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self._poll()
            except Exception:
                log.exception("polling the store failed; retrying")

    async def _poll(self) -> None:
        version, rows, last = await self._executor.read(
            _poll_body, self._data_version, self._last_event, self.id
        )
        self._data_version = version
        if last is None:
            return
        self._last_event = last
        self._publish(rows)
        if any(r.kind in ("RunTriggered", "TokenCompleted", "RunResumed") for r in rows):
            await self._claim_queued()
        if any(r.kind == "RunPaused" for r in rows):
            self._note_deadline(await self._executor.read(store.earliest_deadline))

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            beats += 1
            try:
                now = self.clock()
                await self._executor.write(store.heartbeat, self.id, now)
                # Owners nobody registered are looked for by a scan: at start, then every
                # few minutes (dead engines that are registered are found on every beat).
                await self._recover(look_for_unregistered=beats % OWNER_SCAN_BEATS == 0)
                # Runs handed back by a clean stop() announce nothing: pick them up here.
                await self._claim_queued()
                if beats % 1800 == 1:
                    await self._executor.write(store.prune_events, now - 7 * 86400)
            except Exception:
                log.exception("heartbeat failed; retrying")

    async def _claim_queued(self) -> None:
        """Take every QUEUED run of a task we know, a batch per transaction."""
        for _ in range(1000):  # bounded: 100,000 runs
            out = await self._executor.write(
                store.claim_queued, self.id, self._task_names, self.clock()
            )
            self._absorb(out)
            if out.value < store.CLAIM_BATCH:
                return

    async def _recover(self, look_for_unregistered: bool = True) -> None:
        """Take over runs whose engine died (kill -9, power cut, crash)."""
        engines = await self._executor.read(store.live_engines)
        owners: set[str] = set()
        if look_for_unregistered:  # executing runs are not indexed: this is a scan
            owners = set(await self._executor.read(store.owners_of_executing))
        now = self.clock()
        known = {str(e["id"]): e for e in engines}
        dead = [
            eid
            for eid, row in known.items()
            if eid != self.id and liveness.is_dead(row, now, self.lease)
        ]
        dead += [o for o in owners if o not in known and o != self.id]
        if not dead:
            return
        await self._executor.write(store.mark_engines_stopped, dead, now)
        self._absorb(
            await self._executor.write(
                store.recover, self.id, dead, self._task_names, self.max_recoveries, now
            )
        )

    async def _executor_or_open(
        self,
        fn: Callable[..., Any],
        *args: Any,
        write: bool = False,
        then: Callable[[Any], None] | None = None,
    ) -> Any:
        if self._executor_ is None:
            await self.open()
        if write:
            return await self._executor.write(fn, *args, then=then)
        return await self._executor.read(fn, *args)


def _poll_body(
    tx: Any, known_version: int | None, after: int, origin: str
) -> tuple[int | None, list[EventRow], int | None]:
    """One cheap check per poll: SQLite's data_version moves only when another connection
    committed; only then (or always, where the dialect has no such counter) read the log tail."""
    version = tx.data_version()
    if version is not None and version == known_version:
        return version, [], None
    rows: list[EventRow] = []
    while True:  # every event of the snapshot, in pages; the cursor then skips to its end
        page = store.events_after(tx, after, origin)
        rows += page
        if len(page) < store.EVENT_PAGE:
            break
        after = page[-1].id
    last = store.last_event_id(tx)
    return version, rows, last


# ---------------------------------------------------------------- row → record


def _run(row: Row, payload: str | None, output: str | None, cached: bool = False) -> Run:
    created = to_datetime(row["created_at"])
    updated = to_datetime(row["updated_at"])
    assert created is not None and updated is not None
    return Run(
        id=str(row["id"]),
        task=str(row["task"]),
        status=RUN_STATUSES[row["status"]],
        payload=serde.load(payload),
        output=serde.load(output),
        error=row["error"],
        traceback=row["traceback"],
        tags=tuple(serde.load(row["tags"] or "[]")),
        created_at=created,
        updated_at=updated,
        finished_at=to_datetime(row["finished_at"]),
        waiting_token_id=row["waiting_token_id"],
        idempotency_key=row["idempotency_key"],
        is_cached=cached,
    )


def _token_from_row(row: Row, output: str | None) -> Token:
    created = to_datetime(row["created_at"])
    expires = to_datetime(row["expires_at"])
    assert created is not None and expires is not None
    return Token(
        id=str(row["id"]),
        run_id=row["run_id"],
        status=TOKEN_STATUSES[row["status"]],
        tags=tuple(serde.load(row["tags"] or "[]")),
        created_at=created,
        expires_at=expires,
        completed_at=to_datetime(row["completed_at"]),
        output=serde.load(output),
        idempotency_key=row["idempotency_key"],
    )


def _step(row: Row, result: str | None) -> Step:
    started = to_datetime(row["started_at"])
    finished = to_datetime(row["finished_at"])
    assert started is not None and finished is not None
    return Step(
        run_id=str(row["run_id"]),
        position=int(row["position"]),
        kind=str(row["kind"]),
        name=str(row["name"]),
        ok=bool(row["ok"]),
        result=serde.load(result),
        error=row["error"],
        attempts=int(row["attempts"]),
        started_at=started,
        finished_at=finished,
    )


def _event(row: EventRow) -> Event:
    return event_from(row.kind, row.run_id, row.at, row.origin, row.token_id, row.data, row.values)
