"""The system database: every operation the engine performs on its store, one typed method
each, returning its own record. Implemented once here over SQLAlchemy Core transaction bodies;
SqliteDatabase and PostgresDatabase hold what differs by dialect (how transactions are run,
pragmas and the store thread, locking, migrations).

Methods return an awaitable rather than being coroutines: on SQLite the transaction is queued
at the call, so a caller can prepare its own result while the store thread commits. *then*
runs in the loop as soon as a write is committed (see bell.Then).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from ...units.urls import redact_url
from ..errors import StoreNotUsable
from ..models import (
    AuditEntry,
    Overdue,
    PolicyRecord,
    Run,
    RunStatus,
    Step,
    Token,
    TokenStatus,
)
from . import (
    audit,
    engines,
    event_log,
    migrate,
    policies,
    requirements,
    reviews,
    runs,
    tokens,
)
from .bell import Then
from .executors import Executor
from .records import (
    Canceled,
    Claimed,
    Committed,
    Completion,
    EngineRecord,
    NewRun,
    Paused,
    Polled,
    Resume,
    TimedOut,
    TokenState,
    TokenWrite,
    Triggered,
    Writes,
)
from .tokens import OutputChecks
from .tx import Body, Tx

T = TypeVar("T")


class SystemDatabase:
    """One store, opened by `open_database` (store/__init__.py)."""

    dialect: str

    def __init__(self, executor: Executor, actor: str) -> None:
        self.executor = executor
        self.actor = actor
        """Who this process acts as, told by the store's server where it can tell: the
        session's database role on PostgreSQL, the OS account on SQLite."""
        self.audited: frozenset[str] = frozenset()
        """The tasks whose runs leave entries in the audit trail (set by the engine)."""
        """Runs transaction bodies; tests and benchmarks may read through it directly."""
        self._write = executor.write
        self._read = executor.read

    async def close(self) -> None:
        await self.executor.close()

    async def listen(self, on_change: Callable[[], None]) -> bool:
        """Call *on_change* (in the loop) whenever another process may have appended to the
        event log, where the dialect can tell; return whether it can. The log stays the
        source of truth: a notification only says "look"."""
        return False

    @property
    def listening(self) -> bool:
        """Whether listen() is in effect now (a lost connection ends it)."""
        return False

    @staticmethod
    async def _migrated(
        executor: Executor, url: str, upgrade: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Bring the store behind *executor* to the head with *upgrade* (the dialect's), unless
        it is there already or must not be touched; close *executor* if anything fails.
        Without *upgrade*, a store that is not at the head is refused, saying what to run."""
        try:
            revision, reason = await executor.read(migrate.inspect_store)
            if not migrate.is_current(revision):
                if reason is None and upgrade is None:
                    reason = migrate.not_migrated(revision, redact_url(url))
                if reason is not None:
                    raise StoreNotUsable(redact_url(url), reason)
                assert upgrade is not None
                await upgrade()
        except BaseException:
            await executor.close()  # no thread or connection outlives a failed open
            raise

    # ------------------------------------------------------------ runs

    def trigger(
        self, run: NewRun, payload: str | None, origin: str, then: Then = None
    ) -> Awaitable[Triggered]:
        """Insert *run*; with an idempotency key, the live run holding it is returned instead."""
        if run.idempotency_key is None:
            return self._write(runs.trigger, run, payload, origin, then=then)
        return self._retrying_conflicts(runs.trigger, run, payload, origin)

    def flush(self, run_id: str, owner: str, writes: Writes, now: float) -> Awaitable[None]:
        """Commit an executing run's records (fenced: LostOwnership if it was taken over)."""
        return self._write(runs.flush, run_id, owner, writes, now)

    def create_keyed_token(
        self, run_id: str, owner: str, writes: Writes, token: TokenWrite, now: float
    ) -> Awaitable[TokenWrite | None]:
        """Flush and insert *token*, unless a live token holds its key: that one is returned."""
        return self._retrying_conflicts(runs.create_keyed_token, run_id, owner, writes, token, now)

    def pause(
        self, run_id: str, owner: str, writes: Writes, token_id: str, now: float, then: Then = None
    ) -> Awaitable[Paused]:
        return self._write(runs.pause, run_id, owner, writes, token_id, now, self.actor, then=then)

    def complete_run(
        self,
        run_id: str,
        task: str,
        owner: str,
        writes: Writes,
        output: str | None,
        now: float,
        then: Then = None,
    ) -> Awaitable[Committed]:
        args = (run_id, owner, writes, output, now, self.actor, task in self.audited)
        return self._write(runs.complete, *args, then=then)

    def fail_run(
        self,
        run_id: str,
        task: str,
        owner: str,
        writes: Writes,
        error: str,
        traceback: str,
        now: float,
        then: Then = None,
    ) -> Awaitable[Committed]:
        args = (run_id, owner, writes, error, traceback, now, self.actor, task in self.audited)
        return self._write(runs.fail, *args, then=then)

    def cancel(
        self, run_id: str, reason: str | None, now: float, origin: str
    ) -> Awaitable[Canceled]:
        return self._write(runs.cancel, run_id, reason, now, origin, self.actor, self.audited)

    def claim_queued(self, owner: str, tasks: frozenset[str], now: float) -> Awaitable[Claimed]:
        return self._write(runs.claim_queued, owner, tasks, now)

    def recover(
        self,
        owner: str,
        dead: Sequence[str],
        tasks: frozenset[str],
        max_recoveries: int,
        now: float,
    ) -> Awaitable[Committed]:
        return self._write(runs.recover, owner, dead, tasks, max_recoveries, now)

    def get_run(self, run_id: str) -> Awaitable[Run]:
        return self._read(runs.get_run, run_id)

    def list_runs(
        self, status: RunStatus | None, task: str | None, limit: int, before: float | None
    ) -> Awaitable[list[Run]]:
        return self._read(runs.list_runs, status, task, limit, before)

    def get_steps(self, run_id: str) -> Awaitable[list[Step]]:
        return self._read(runs.get_steps, run_id)

    def count_runs(self) -> Awaitable[dict[str, int]]:
        return self._read(runs.count_runs)

    # ------------------------------------------------------------ tokens

    def complete_token(
        self,
        token_id: str,
        output: str | None,
        *,
        owner: str | None,
        tasks: frozenset[str],
        now: float,
        origin: str,
        known: Resume | None = None,
        checks: OutputChecks | None = None,
        then: Then = None,
    ) -> Awaitable[Completion]:
        """Complete a waiting token as `actor` and wake its runs, handing them to *owner*
        (None: queue them); *known* is a waiter's history as kept since it paused."""
        return self._write(
            tokens.complete,
            *(token_id, output, owner, tasks, now, origin, self.actor, known, checks),
            self.audited,
            then=then,
        )

    def decide(
        self,
        token_id: str,
        output: str,
        seen: str | None,
        *,
        owner: str | None,
        tasks: frozenset[str],
        now: float,
        origin: str,
        known: Resume | None = None,
        checks: OutputChecks | None = None,
        then: Then = None,
    ) -> Awaitable[reviews.Decision]:
        """Record `actor`'s decision on a review's token, checked against its requirement in
        the same transaction, and complete the token when it is final (reviews.py)."""
        return self._write(
            reviews.decide,
            *(token_id, output, seen, owner, tasks, now, origin, self.actor, known, checks),
            self.audited,
            then=then,
        )

    def waiting_for_me(self, now: float, limit: int = 1000) -> Awaitable[list[str]]:
        return self._read(self._waiting_for_me, now, limit)

    def _waiting_for_me(self, tx: Tx, now: float, limit: int) -> list[str]:
        return reviews.waiting_for(tx, self.actor, self.roles(tx), now, limit)

    def roles(self, tx: Tx) -> frozenset[str]:
        """The names a requirement's approvers may give this session: on SQLite, its actor."""
        return frozenset({self.actor})

    def overdue_reviews(self, now: float, limit: int = 200) -> Awaitable[list[Overdue]]:
        return self._read(requirements.overdue, now, limit)

    # ------------------------------------------------------------ the approval policy

    def apply_policy(self, text: str, now: float) -> Awaitable[PolicyRecord]:
        return self._write(policies.apply, text, self.actor, now)

    def current_policy(self) -> Awaitable[PolicyRecord | None]:
        return self._read(policies.current)

    def time_out_due(self, owner: str, tasks: frozenset[str], now: float) -> Awaitable[TimedOut]:
        return self._write(tokens.time_out_due, owner, tasks, now, self.actor, self.audited)

    def earliest_deadline(self) -> Awaitable[float | None]:
        return self._read(tokens.earliest_deadline)

    def get_token(self, token_id: str) -> Awaitable[Token]:
        return self._read(tokens.get_token, token_id)

    def token_states(self, token_ids: Sequence[str]) -> Awaitable[dict[str, TokenState]]:
        return self._read(tokens.states, list(token_ids))

    def list_tokens(
        self,
        status: TokenStatus | None,
        tags: Sequence[str],
        run_id: str | None,
        limit: int,
    ) -> Awaitable[list[Token]]:
        return self._read(tokens.list_tokens, status, tags, run_id, limit)

    # ------------------------------------------------------------ the audit trail

    def audit_entries(
        self,
        after: int = 0,
        limit: int = audit.PAGE,
        since: str | None = None,
        run_id: str | None = None,
    ) -> Awaitable[list[AuditEntry]]:
        return self._read(audit.entries, after, limit, since, run_id)

    # ------------------------------------------------------------ engines

    def register_engine(self, engine: EngineRecord) -> Awaitable[None]:
        return self._write(engines.register, engine)

    def heartbeat(self, engine_id: str, now: float) -> Awaitable[None]:
        return self._write(engines.heartbeat, engine_id, now)

    def live_engines(self) -> Awaitable[list[EngineRecord]]:
        return self._read(engines.live)

    def owners_of_executing(self) -> Awaitable[list[str]]:
        return self._read(engines.owners_of_executing)

    def mark_engines_stopped(self, engine_ids: Iterable[str], now: float) -> Awaitable[None]:
        return self._write(engines.mark_stopped, list(engine_ids), now)

    def release(self, engine_id: str, now: float, hand_back: bool = True) -> Awaitable[None]:
        """Hand back the runs *engine_id* executes (QUEUED) and sign it off."""
        return self._write(engines.release, engine_id, now, hand_back)

    # ------------------------------------------------------------ the event log

    def poll(self, known_version: int | None, after: int, origin: str) -> Awaitable[Polled]:
        """Events other engines logged after *after* (not those of *origin*)."""
        return self._read(event_log.poll, known_version, after, origin)

    def last_event_id(self) -> Awaitable[int]:
        return self._read(event_log.last_event_id)

    def prune_events(self, before: float) -> Awaitable[None]:
        return self._write(event_log.prune, before)

    # ------------------------------------------------------------ dialect

    async def _retrying_conflicts(self, fn: Body[T], *args: Any) -> T:
        """A write that checks an idempotency key, then inserts it. Two processes can both
        find the key free (PostgreSQL's READ COMMITTED); the loser hits the unique index, and
        its retry finds the winner's row. SQLite's BEGIN IMMEDIATE serialises them."""
        for attempt in range(3):
            try:
                return await self._write(fn, *args)
            except (sqlite3.IntegrityError, sa.exc.IntegrityError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
