"""An engine's background duties: a timer for the earliest token deadline, a watcher that
notices what other processes committed, and a heartbeat that also takes over runs whose engine
died and picks up runs handed back to the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from . import liveness
from .runner import RunHost, Runner
from .store.runs import CLAIM_BATCH

log = logging.getLogger("hitl_desktop.engine")

TIMER_RECHECK = 30.0
"""Longest sleep of the deadline timer before it compares the wall clock with the deadline."""
OWNER_SCAN_BEATS = 150
"""Heartbeats between two scans for executing runs whose owner is not registered (5 minutes
at the default 2 s)."""
PRUNE_BEATS = 1800
"""Heartbeats between two prunings of the event log (an hour at the default 2 s)."""
EVENT_LOG_DAYS = 7
LISTENING_RECHECK = 1.0
"""While notifications say when to look, the log is still read this often: a lost
notification costs at most this delay."""


class Background:
    def __init__(
        self,
        host: RunHost,
        runner: Runner,
        *,
        poll_interval: float,
        heartbeat_interval: float,
        lease: float,
        max_recoveries: int,
        timer_recheck: float,
        execute: bool = True,
        listen: bool = True,
    ) -> None:
        self.host = host
        self.runner = runner
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.lease = lease
        self.max_recoveries = max_recoveries
        self.timer_recheck = timer_recheck
        self.execute = execute
        self.listen = listen
        """False: watch and beat only (a review-only console): no timers, claims or recovery."""
        self.active = False
        self._loops: list[asyncio.Task[None]] = []
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._last_event = 0
        self._data_version: int | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Catch up (recover what crashed, time out what expired, claim what is queued), then
        start watching and beating."""
        self._last_event = await self.host.db.last_event_id()
        if self.listen:
            await self.host.db.listen(self._changed.set)
        self.active = self.execute
        if self.execute:
            await self.recover()
            await self.fire_timers()
            await self.claim_queued()
        self._loops = [
            asyncio.create_task(self._watch(), name="hitl-watch"),
            asyncio.create_task(self._heartbeat(), name="hitl-heartbeat"),
        ]

    async def stop(self) -> None:
        self.active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._loops)
        if self._timer_task is not None:
            tasks.append(self._timer_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
        self._deadline = None

    # ------------------------------------------------------------ the deadline timer

    def note_deadline(self, deadline: float | None) -> None:
        """Keep one timer, for the earliest deadline of any waiting token."""
        if deadline is None or not self.active:
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
        delay = min(max(0.0, deadline - self.host.clock()), self.timer_recheck)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is not None and self._deadline > self.host.clock():
            self._arm_timer(self._deadline)  # a recheck, not the deadline yet
            return
        self._deadline = None
        if self._timer_task is None or self._timer_task.done():
            self._timer_task = asyncio.create_task(self.fire_timers(), name="hitl-timers")

    async def fire_timers(self) -> None:
        host = self.host
        out = await host.db.time_out_due(host.id, self.runner.task_names, host.clock())
        self.runner.absorb(out)
        self.note_deadline(out.next_deadline)

    # ------------------------------------------------------------ other processes

    async def _watch(self) -> None:
        """Notice commits made by other processes: events to relay, runs to pick up. Where
        the store notifies, a notification starts the next look at once."""
        db = self.host.db
        while True:
            wait = (
                max(LISTENING_RECHECK, self.poll_interval) if db.listening else self.poll_interval
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            self._changed.clear()  # before the look: what is notified during it looks again
            try:
                await self._poll()
            except Exception:
                log.exception("polling the store failed; retrying")

    async def _poll(self) -> None:
        db = self.host.db
        polled = await db.poll(self._data_version, self._last_event, self.host.id)
        self._data_version = polled.data_version
        if polled.last_event_id is None:
            return
        self._last_event = polled.last_event_id
        events = polled.events
        self.host.publish(events)
        if not self.execute:
            return
        if any(e.kind in ("RunTriggered", "TokenCompleted", "RunResumed") for e in events):
            await self.claim_queued()
        if any(e.kind == "RunPaused" for e in events):
            self.note_deadline(await db.earliest_deadline())

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            beats += 1
            try:
                now = self.host.clock()
                await self.host.db.heartbeat(self.host.id, now)
                if self.listen and not self.host.db.listening:  # lost its connection: retry
                    await self.host.db.listen(self._changed.set)
                if not self.execute:
                    continue
                # Owners nobody registered are looked for by a scan: at start, then every
                # few minutes (dead engines that are registered are found on every beat).
                await self.recover(look_for_unregistered=beats % OWNER_SCAN_BEATS == 0)
                # Runs handed back by a clean stop() announce nothing: pick them up here.
                await self.claim_queued()
                if beats % PRUNE_BEATS == 1:
                    await self.host.db.prune_events(now - EVENT_LOG_DAYS * 86400)
            except Exception:
                log.exception("heartbeat failed; retrying")

    async def claim_queued(self) -> None:
        """Take every QUEUED run of a task we know, a batch per transaction."""
        host = self.host
        for _ in range(1000):  # bounded: 100,000 runs
            out = await host.db.claim_queued(host.id, self.runner.task_names, host.clock())
            self.runner.absorb(out)
            if out.looked_at < CLAIM_BATCH:
                return

    async def recover(self, look_for_unregistered: bool = True) -> None:
        """Take over runs whose engine died (kill -9, power cut, crash)."""
        host, db = self.host, self.host.db
        engines = await db.live_engines()
        owners: set[str] = set()
        if look_for_unregistered:  # executing runs are not indexed: this is a scan
            owners = set(await db.owners_of_executing())
        now = host.clock()
        known = {e.id: e for e in engines}
        dead = [
            eid
            for eid, engine in known.items()
            if eid != host.id and liveness.is_dead(engine, now, self.lease)
        ]
        dead += [o for o in owners if o not in known and o != host.id]
        if not dead:
            return
        await db.mark_engines_stopped(dead, now)
        tasks = self.runner.task_names
        self.runner.absorb(await db.recover(host.id, dead, tasks, self.max_recoveries, now))
