"""The Engine: runs tasks durably in the caller's event loop.

One engine per process and store. It executes runs as asyncio tasks only while they have work
to do (runner.py); a waiting run is rows in the store (store/) and nothing else. Its background
duties (a deadline timer, a watcher for other processes' commits, a heartbeat that takes over
runs of dead engines) live in background.py.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..units.defaults import DEFAULT_TOKEN_TIMEOUT
from . import liveness, serde
from .background import TIMER_RECHECK, Background
from .errors import DecisionRefused, EngineNotStarted, OutputRefused, TaskNotFound, TokenExpired
from .events import Event, EventHub, EventStream, event_from
from .models import (
    AuditEntry,
    AuditReport,
    Overdue,
    PolicyRecord,
    Run,
    RunStatus,
    Step,
    Token,
    TokenStatus,
    to_datetime,
)
from .runner import Runner
from .store import SystemDatabase, open_database
from .store.audit import GENESIS, first_break
from .store.audit import timestamp as audit_timestamp
from .store.records import Completion, EventRow, NewRun, Resume, Triggered
from .store.schema import SCHEMA_REVISION
from .tasks import TaskFn, registry

DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
C = TypeVar("C", bound=Completion)

DECISION_LIMIT = 64 * 1024
"""A decision's JSON is kept inline with its verdict: at most this many bytes."""


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
        actor: str | None = None,
        migrate: bool = True,
        execute: bool = True,
        listen: bool = True,
    ) -> None:
        """*clock* is the wall clock deadlines are kept in (epoch seconds). The deadline timer
        sleeps on the loop's monotonic clock, which stops while the machine is suspended: it
        wakes at least every *timer_recheck* seconds to compare *clock* with the deadline, so
        a token whose deadline passed during a suspend times out at most that long after the
        machine resumes.

        Who this engine acts as (recorded as a run's creator and a token's completer) is told
        by the store's server: the session's role on PostgreSQL. A SQLite file has no server:
        there it is *actor*, by default the OS account.

        With *migrate* False the engine does not create or upgrade the store's schema: a store
        that is not at this version's schema is refused (StoreNotUsable) naming the command
        that migrates it. A console on a team store opens it so; `migrate_store` migrates.

        With *execute* False (a review-only console) a started engine executes nothing: it
        watches the store for what others commit, and its completions and triggers queue runs
        for the engines that execute (workers).

        On PostgreSQL the engine LISTENs for other processes' commits; *listen* False makes it
        poll every *poll_interval* instead (behind a pooler that cannot LISTEN, such as
        PgBouncer in transaction mode)."""
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise ValueError(f"synchronous must be FULL, NORMAL, EXTRA or OFF, not {synchronous!r}")
        if not timer_recheck > 0:
            raise ValueError(
                f"timer_recheck must be a positive number of seconds, not {timer_recheck!r}"
            )
        self.url = url
        self.id = serde.new_id("eng")
        self.clock = clock
        self.default_token_timeout = serde.seconds(default_token_timeout)
        self.max_payload_bytes = max_payload_bytes
        self.synchronous = synchronous.upper()
        self.lease = lease
        self._actor = actor
        self._migrate = migrate
        self.execute = execute
        self._tasks = registry(tasks)
        # None when no task checks outputs: completions then read nothing extra.
        self._output_checks: dict[str, Callable[[Any], object]] | None = {
            name: t.check_output for name, t in self._tasks.items() if t.check_output is not None
        } or None
        self._db: SystemDatabase | None = None
        self._opening = asyncio.Lock()
        self._hub = EventHub()
        self._started = False
        self._runner = Runner(self, self._tasks)
        self._background = Background(
            self,
            self._runner,
            poll_interval=poll_interval,
            heartbeat_interval=heartbeat_interval,
            lease=lease,
            max_recoveries=max_recoveries,
            timer_recheck=timer_recheck,
            execute=execute,
            listen=listen,
        )

    # ------------------------------------------------------------ what runs need (RunHost)

    @property
    def db(self) -> SystemDatabase:
        """The store, once opened."""
        if self._db is None:
            raise EngineNotStarted()
        return self._db

    def publish(self, events: Iterable[EventRow]) -> None:
        for row in events:
            self._hub.publish(_event(row))

    def note_deadline(self, deadline: float | None) -> None:
        self._background.note_deadline(deadline)

    # ------------------------------------------------------------ lifecycle

    @property
    def actor(self) -> str:
        """Who this engine acts as in its store, once opened (see __init__)."""
        return self.db.actor

    @property
    def started(self) -> bool:
        return self._started

    @property
    def _executing(self) -> bool:
        return self._started and self.execute

    async def open(self) -> None:
        """Open the store and migrate it, without executing runs (enough for reads and
        completions, as the CLI does). start() calls it."""
        async with self._opening:  # callers racing the first open share its store
            if self._db is None:
                db = await open_database(self.url, self.synchronous, self._actor, self._migrate)
                db.audited = frozenset(name for name, t in self._tasks.items() if t.audit)
                self._db = db

    async def _opened(self) -> SystemDatabase:
        if self._db is None:
            await self.open()
        return self.db

    async def start(self) -> None:
        """Open the store, recover what crashed, time out what expired, and start executing."""
        if self._started:
            return
        self._runner.stopping = False
        await self.open()
        await self.db.register_engine(liveness.this_engine(self.id, self.clock()))
        self._started = True
        await self._background.start()

    async def stop(self) -> None:
        """Stop executing: runs in flight are handed back to the store (QUEUED) for next time."""
        self._runner.stopping = True  # a commit landing now starts no new run
        await self._background.stop()
        await self._runner.stop()
        if self._db is not None:
            if self._started:
                await self._db.release(self.id, self.clock(), hand_back=self.execute)
            await self._db.close()
            self._db = None
        self._started = False
        self._runner.stopping = False
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
        audit: tuple[str, str] | None = None,
    ) -> Run:
        """Create a run of *task*. A started engine executes it at once; otherwise it is QUEUED
        for whichever engine starts next. With an *idempotency_key*, a run already holding
        the key (within its TTL) is returned instead, with `is_cached=True`.

        *audit* is (kind, run id): an audit-trail entry about that run, naming the new run
        (``{"run": id, "task": task}``), committed with it; none when an existing run is
        returned. Its kind is one of `TRIGGER_ENTRIES` (ValueError otherwise); on PostgreSQL
        the store's function `hitl_note_run` appends it, for any role that may trigger runs."""
        found = self._tasks.get(task)
        if found is None:
            raise TaskNotFound(task, list(self._tasks))
        text = serde.dump(payload, f"the payload of a {task!r} run", self.max_payload_bytes)
        db = self._db or await self._opened()
        now = self.clock()
        started = self._executing
        new = NewRun(
            id=serde.new_id("run"),
            task=task,
            status=RunStatus.EXECUTING if started else RunStatus.QUEUED,
            tags=list(tags),
            idempotency_key=idempotency_key,
            idempotency_expires_at=(
                None if idempotency_key_ttl is None else now + serde.seconds(idempotency_key_ttl)
            ),
            owner=self.id if started else None,
            code_hash=found.code_hash,
            created_at=now,
            created_by=db.actor,
            audit=audit,
        )
        resume = Resume(new.id, task, text, {}, {})
        # Queued at once (SQLite): the Run is built while the store thread commits, and the
        # run starts as soon as the commit is known.
        pending = db.trigger(new, text, self.id, then=functools.partial(self._triggered, resume))
        created = to_datetime(now)
        assert created is not None
        run = Run(
            id=new.id,
            task=task,
            status=new.status,
            payload=serde.load(text),
            output=None,
            error=None,
            traceback=None,
            tags=tuple(new.tags),
            created_at=created,
            updated_at=created,
            finished_at=None,
            waiting_token_id=None,
            idempotency_key=idempotency_key,
            created_by=db.actor,
        )
        out = await pending
        if out.existing is not None:
            return out.existing
        if idempotency_key is not None:  # committed without the hook (retried on conflicts)
            self._triggered(resume, out)
        return run

    def _triggered(self, resume: Resume, out: Triggered) -> None:
        self.publish(out.events)
        if self._executing and out.existing is None:
            self._runner.spawn(resume)

    async def get_run(self, run_id: str) -> Run:
        return await (await self._opened()).get_run(run_id)

    async def list_runs(
        self,
        status: RunStatus | str | None = None,
        *,
        task: str | None = None,
        limit: int = 100,
        before: float | None = None,
    ) -> list[Run]:
        """Runs, newest first; *before* (epoch seconds) pages through older ones."""
        db = await self._opened()
        return await db.list_runs(
            None if status is None else RunStatus(status), task, limit, before
        )

    async def get_steps(self, run_id: str) -> list[Step]:
        """The run's recorded history: steps, token creations and waits, with timings."""
        return await (await self._opened()).get_steps(run_id)

    async def count_runs(self) -> dict[str, int]:
        """How many runs there are in each status."""
        return await (await self._opened()).count_runs()

    async def running_engines(self) -> list[str]:
        """Ids of the other engines executing runs on this store now (alive, not stopped):
        the CLI leaves a resumed run to them rather than executing it itself."""
        engines = await (await self._opened()).live_engines()
        now = self.clock()
        return [
            e.id for e in engines if e.id != self.id and not liveness.is_dead(e, now, self.lease)
        ]

    async def cancel(self, run_id: str, reason: str | None = None) -> bool:
        """Cancel a run that has not finished; False if it had already finished."""
        out = await (await self._opened()).cancel(run_id, reason, self.clock(), self.id)
        self._runner.cancel(run_id)
        self.publish(out.events)
        return out.already is None

    # ------------------------------------------------------------ tokens

    async def complete_token(self, token_id: str, output: Any = None) -> Token:
        """Complete a WAITING token and resume its run. Exactly once: a token that is already
        COMPLETED or TIMED_OUT raises `TokenAlreadyFinished` and nothing changes.

        A token past its deadline cannot be completed: this times it out (its run resumes to
        handle the expiry) and raises `TokenExpired`. When the task of the token's run
        declares `check_output`, the output is checked first: `OutputRefused` if the check
        raises, and the token and run keep waiting."""
        text = serde.dump(output, f"the output for token {token_id}", self.max_payload_bytes)
        db = self._db or await self._opened()
        out, _ = await self._finishing(
            token_id, functools.partial(db.complete_token, token_id, text)
        )
        return out.token()

    async def _finishing(
        self, token_id: str, write: Callable[..., Awaitable[C]]
    ) -> tuple[C, Resume | None]:
        """Commit *write* (a completion or a decision on *token_id*) on behalf of this engine,
        with the history kept of the run waiting on it; that history is kept again when the
        write is refused. Raises TokenExpired when the write found the token past its deadline
        (and timed it out). Returns what was committed and the history it was given."""
        known = self._runner.take_paused(token_id)
        try:
            out = await write(
                owner=self.id if self._executing else None,
                tasks=self._runner.task_names,
                now=self.clock(),
                origin=self.id,
                known=known,
                checks=self._output_checks,
                then=self._runner.absorb,
            )
        except (OutputRefused, DecisionRefused):
            if known is not None:  # still valid: the run still waits on the token
                self._runner.keep_paused(token_id, known)
            raise
        if out.expired_at is not None:  # timed out by this very commit
            raise TokenExpired(token_id, out.expired_at)
        return out, known

    async def decide(self, token_id: str, decision: Any, *, seen: str | None = None) -> Token:
        """Record this engine's actor's decision on a review's token: *decision* is a JSON
        object whose "decision" is "approve" or "reject" (and whatever else the task reads).
        The token's requirement is checked where the decision commits (on PostgreSQL by the
        store's own function, as the session's role): `DecisionRefused` names why it may not
        be made, and nothing is recorded. *seen* is the hash of what the reviewer was shown.

        Returns the token: COMPLETED when this decision was final (a rejection, or the last
        approval needed), else WAITING with its verdicts so far. Raises TokenAlreadyFinished,
        TokenExpired and OutputRefused as complete_token does. A token without a requirement
        takes one decision by anyone."""
        limit = min(self.max_payload_bytes, DECISION_LIMIT)
        text = serde.dump(decision, f"the decision on token {token_id}", limit)
        assert text is not None
        db = self._db or await self._opened()
        out, known = await self._finishing(
            token_id, functools.partial(db.decide, token_id, text, seen)
        )
        if not out.final and known is not None:
            self._runner.keep_paused(token_id, known)
        return out.token()

    async def waiting_for_me(self) -> list[str]:
        """The tokens of reviews still waiting that this engine's actor may decide and has not
        (by their requirement: approvers, escalation once overdue, no self-approval), up to
        1,000, soonest deadline first. What the store would accept, read: a decision is still
        checked where it commits."""
        return await (await self._opened()).waiting_for_me(self.clock())

    async def overdue_reviews(self) -> list[Overdue]:
        """Reviews still waiting past their requirement's remind_after, longest overdue first
        (up to 200): for reminders, and to tell who else may now decide."""
        return await (await self._opened()).overdue_reviews(self.clock())

    # ------------------------------------------------------------ the approval policy

    async def apply_policy(self, text: str) -> PolicyRecord:
        """Store *text* as the approval policy's next version (empty: no policy), recorded in
        the audit trail. The engine keeps it as text: whoever executes the runs reads it."""
        return await (await self._opened()).apply_policy(text, self.clock())

    async def current_policy(self) -> PolicyRecord | None:
        """The policy in force, or None (none applied, or the latest one is empty)."""
        return await (await self._opened()).current_policy()

    async def get_token(self, token_id: str) -> Token:
        return await (await self._opened()).get_token(token_id)

    async def list_tokens(
        self,
        status: TokenStatus | str | None = None,
        tags: Sequence[str] = (),
        *,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Token]:
        """Tokens, newest first, filtered by status, by run, and by tags (all must match)."""
        db = await self._opened()
        return await db.list_tokens(
            None if status is None else TokenStatus(status), list(tags), run_id, limit
        )

    # ------------------------------------------------------------ the audit trail

    async def audit_entries(
        self,
        after: int = 0,
        *,
        limit: int = 1000,
        since: datetime | None = None,
        run_id: str | None = None,
    ) -> list[AuditEntry]:
        """Entries of the store's audit trail with an id above *after*, oldest first (and at
        or after *since*; about *run_id* only), written by the runs of tasks declared with
        `audit=True` and by changes to the approval policy."""
        db = await self._opened()
        since_text = None if since is None else audit_timestamp(since.timestamp())
        return await db.audit_entries(after, limit, since_text, run_id)

    async def verify_audit(self) -> AuditReport:
        """Walk the whole audit trail: the first entry that was changed, or that follows a
        removed or inserted one (`broken`), and how many entries were checked."""
        db = await self._opened()
        head, after, checked = GENESIS, 0, 0
        for _ in range(10_000_000):  # bounded: pages of 1,000
            page = await db.audit_entries(after)
            if not page:
                break
            broken = first_break(page, head)
            if broken is not None:
                checked += sum(1 for e in page if e.id < broken.entry_id)
                return AuditReport(checked, head, broken)
            checked += len(page)
            head, after = page[-1].hash, page[-1].id
        return AuditReport(checked, head, None)

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


def _event(row: EventRow) -> Event:
    return event_from(row.kind, row.run_id, row.at, row.origin, row.token_id, row.data, row.values)


async def migrate_store(url: str) -> str:
    """Create or upgrade the store's schema at *url* (once, as the store's owner); return the
    schema revision it is now at."""
    db = await open_database(url)
    await db.close()
    return SCHEMA_REVISION
