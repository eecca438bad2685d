"""The console's logic between the engine and the widgets: no widgets and no SQL here.

`Console` reads through the engine API only (`list_runs`, `get_run`, `get_steps`, `get_token`,
`count_runs`), feeds the `RunsModel`, applies the engine's events (`EngineBridge.events`) and
makes decisions (`agent.db_change.decide`). Widgets call its methods and listen to its signals.

A change set (`agent.read_change_set`) is one run, one row: its parts are decided one by one,
each on its own token (`RunView.for_part`); the row's mark and the pane follow its parts' tokens.
An applied run can be reverted (`agent.revert`): a new run, reviewed like any other.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ..agent import (
    TASK_NAME,
    ChangeRequest,
    ChangeSet,
    Decision,
    Edit,
    EditRefused,
    Problem,
    RevertState,
    Review,
    Targets,
    check_edits,
    decide,
    read_change_set,
    request_change,
    revert,
    revert_state,
    review_from_steps,
)
from ..application import Decided, change_request
from ..config import Settings
from ..engine import (
    AuditEntry,
    AuditReport,
    DecisionRefused,
    Engine,
    Event,
    OutputRefused,
    Run,
    RunNotFound,
    RunPaused,
    Token,
    TokenAlreadyFinished,
    TokenCompleted,
    TokenExpired,
    TokenNotFound,
    TokenReviewed,
    TokenTimedOut,
)
from .records import RunDetails, RunRow, RunView, View, already_finished, format_when
from .runs_model import RunsModel

log = logging.getLogger("hitl_desktop.ui")

PAGE = 200
"""Runs per page: the first page fills the table at once, the next ones come on scroll."""
SCAN_PAGES = 10
"""For views the engine cannot filter (Applied, Failed…): pages read per fetch at most."""
REVIEW_CACHE = 2000
BATCH_READ = 20
"""More runs than this to re-read at once: read the newest runs in one query."""
ANNOUNCE_EACH = 3
"""More runs than this starting to wait at once get one notification for all of them."""
AUDIT_PAGE = 1000
AUDIT_PAGES = 100
"""Pages of a run's audit entries read at most (a run has a handful of entries)."""


class NotWaiting(Exception):
    """A run that was to be decided no longer waits for a decision: nothing was changed."""

    def __init__(self, view: RunView, now: float) -> None:
        decided = view.decided
        if decided is not None:
            when = format_when(decided.at.timestamp(), now)
            reason = f"already decided: {decided.sentence(when)}"
        elif view.part is not None:
            part = view.part
            reason = f"part {part.number} is not waiting for a decision (it is {part.status})"
        elif view.change_set is not None:
            reason = "a change set is decided part by part: select it alone to decide its parts"
        else:
            reason = f"it is not waiting for a decision (it is {view.row.state})"
        super().__init__(reason)
        self.run_id = view.run.id


class Console(QObject):
    """What the main window does, without the window: views, paging, events, decisions."""

    view_changed = Signal(object)
    """The table's `View`."""
    run_view_changed = Signal(object)
    """The selected run's `RunView`, or None when nothing is selected."""
    run_stopped_waiting = Signal(str, str)
    """(run id, message): the selected run can no longer be decided (at once, before re-reading)."""
    message = Signal(str)
    """A short message for the status bar."""
    counts_changed = Signal(dict)
    """Runs per state name: waiting, working, completed, failed, canceled."""
    run_waiting = Signal(str, str)
    """(run id, request): a run started waiting for review (for notifications)."""

    def __init__(
        self,
        engine: Engine,
        model: RunsModel,
        settings: Settings,
        *,
        reviewer: str,
        targets: Targets | None = None,
        linger_s: float = 2.5,
        page: int = PAGE,
        clock: Callable[[], float] = time.time,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self.engine = engine
        self.model = model
        self.settings = settings
        self.targets = targets if targets is not None else Targets(settings.target_profiles())
        self.reviewer = reviewer
        self.linger_s = linger_s
        self.page = page
        self.view = View.WAITING
        self.selected: str | None = None
        self.current: RunView | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._generation = 0
        self._dirty: set[str] = set()
        self._refreshing = False
        self._reviews: OrderedDict[str, Review | None] = OrderedDict()
        self._mine: set[str] = set()
        """In View.MINE: the tokens the store says this reviewer may still decide."""
        self._loading_view: asyncio.Task[None] | None = None
        self._view_reads = 0
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(400)
        self._counts_timer.timeout.connect(lambda: self._spawn(self.refresh_counts()))
        model.fetch_wanted.connect(self._on_fetch_wanted)
        model.details_wanted.connect(self._on_details_wanted)

    # ------------------------------------------------------------ tasks

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("console task failed", exc_info=task.exception())
            self.message.emit(f"Error: {task.exception()}")

    async def close(self) -> None:
        """Cancel whatever is still reading (before the engine stops)."""
        self._counts_timer.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until no read is in flight (tests and the benchmark)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------ views and paging

    async def start(self) -> None:
        """Fill the table with the first page of the current view and count the runs."""
        self.set_view(self.view)
        self._counts_timer.start(0)
        await self.idle(30.0)

    def set_view(self, view: View) -> None:
        self.view = view
        self._generation += 1
        self.model.reset()
        self.view_changed.emit(view)
        self.model.fetchMore()

    def _on_fetch_wanted(self) -> None:
        self._spawn(self._fetch(self._generation))

    def _admits(self, row: RunRow) -> bool:
        if not self.view.accepts(row):
            return False
        return self.view is not View.MINE or row.token_id in self._mine

    async def _update_mine(self) -> None:
        if self.view is View.MINE:
            self._mine = set(await self.engine.waiting_for_me())

    async def _fetch(self, generation: int) -> None:
        view = self.view
        cursor = self.model.oldest
        await self._update_mine()
        found: list[RunRow] = []
        exhausted = False
        try:
            for _ in range(SCAN_PAGES):
                # Ties on created_at: ask for everything up to and including the cursor's
                # instant (one more row, as the cursor's own row comes back), skip what the
                # model has; then strictly older.
                before = None if cursor is None else math.nextafter(cursor, math.inf)
                limit = self.page if cursor is None else self.page + 1
                runs = await self.engine.list_runs(view.status, limit=limit, before=before)
                if generation != self._generation:
                    return
                rows = [RunRow.from_run(r) for r in runs]
                fresh = [r for r in rows if self.model.get(r.id) is None]
                if rows and not fresh and len(rows) == limit and cursor is not None:
                    # A whole page of one instant already seen: step past that instant.
                    runs = await self.engine.list_runs(view.status, limit=limit, before=cursor)
                    if generation != self._generation:
                        return
                    rows = [RunRow.from_run(r) for r in runs]
                    fresh = rows
                exhausted = len(rows) < limit
                found += [r for r in fresh if self._admits(r)]
                if rows:
                    cursor = min(r.created_at for r in rows)
                if exhausted or len(found) >= self.page // 4 or view.status is not None:
                    break
        except Exception:
            self.model.fetch_failed()
            raise
        added = self.model.append_page(found, exhausted=exhausted)
        if not added and not exhausted and cursor is not None:
            # Everything scanned was filtered out: carry on from where the scan stopped.
            self._scan_from(cursor, generation)

    def _scan_from(self, cursor: float, generation: int) -> None:
        async def go() -> None:
            view = self.view
            runs = await self.engine.list_runs(view.status, limit=self.page, before=cursor)
            if generation != self._generation:
                return
            rows = [RunRow.from_run(r) for r in runs]
            exhausted = len(rows) < self.page
            wanted = [r for r in rows if self._admits(r) and self.model.get(r.id) is None]
            self.model.append_page(wanted, exhausted=exhausted)
            if not wanted and not exhausted and rows:
                self._scan_from(min(r.created_at for r in rows), generation)

        self._spawn(go())

    # ------------------------------------------------------------ lazy details

    def _on_details_wanted(self, ids: list[str]) -> None:
        self._spawn(self._load_details(ids))

    async def _review(self, run_id: str) -> Review | None:
        if run_id in self._reviews:
            self._reviews.move_to_end(run_id)
            return self._reviews[run_id]
        try:
            review = review_from_steps(await self.engine.get_steps(run_id))
        except RunNotFound:
            return None
        except (KeyError, TypeError, ValueError):
            review = None
        if review is not None:  # a review never changes once recorded
            self._reviews[run_id] = review
            while len(self._reviews) > REVIEW_CACHE:
                self._reviews.popitem(last=False)
        return review

    async def _token(self, token_id: str | None) -> Token | None:
        if token_id is None:
            return None
        try:
            return await self.engine.get_token(token_id)
        except TokenNotFound:
            return None

    async def _load_details(self, ids: list[str]) -> None:
        found: dict[str, RunDetails] = {}
        for run_id in ids:
            row = self.model.get(run_id)
            if row is None:
                continue
            review = await self._review(run_id)
            token = await self._token(row.token_id) if row.waiting else None
            found[run_id] = RunDetails.build(review, token, await self._change_set(review, run_id))
        self.model.set_details(found)

    async def _change_set(self, review: Review | None, run_id: str) -> ChangeSet | None:
        """The change set of *run_id* as its parts' tokens say now (never cached: they change
        as parts are decided); None, without a read, for a run of one review."""
        if review is None or not review.parts:
            return None
        try:
            return await read_change_set(self.engine, run_id)
        except RunNotFound:
            return None

    # ------------------------------------------------------------ events

    def on_events(self, events: list[Event]) -> None:
        """Slot for `EngineBridge.events`: react at once, then re-read the runs concerned."""
        ids: dict[str, None] = {}
        paused: list[str] = []
        parts: dict[str, None] = {}
        for event in events:
            ids[event.run_id] = None
            self._react(event)
            if isinstance(event, RunPaused):
                paused.append(event.run_id)
            if isinstance(event, TokenCompleted | TokenTimedOut | TokenReviewed):
                review = self._reviews.get(event.run_id)
                if review is not None and review.parts and self.model.details(event.run_id):
                    # A part decided: the run's row is the same, its mark is not.
                    parts[event.run_id] = None
        if paused:
            self._spawn(self._announce(paused))
        if parts:
            self._spawn(self._load_details(list(parts)))
        self._dirty.update(ids)
        if not self._refreshing:
            self._refreshing = True
            self._spawn(self._refresh_dirty())
        if not self._counts_timer.isActive():
            self._counts_timer.start()

    def _react(self, event: Event) -> None:
        current = self.current
        if current is None or event.run_id != current.run.id or current.token is None:
            return
        if current.change_set is not None:
            self._react_part(current.change_set, event)
            return
        if isinstance(event, TokenTimedOut) and event.token_id == current.token.id:
            self.run_stopped_waiting.emit(
                event.run_id, "This request expired: nobody decided in time. Nothing was written."
            )
        elif (
            isinstance(event, TokenCompleted)
            and event.token_id == current.token.id
            and event.origin != self.engine.id  # our own decisions are not news
        ):
            self.run_stopped_waiting.emit(event.run_id, _decided_elsewhere(event.output))
            # The event carries the decision, not who the store says made it: read that.
            self._spawn(self._tell_who_decided(event.run_id, event.token_id))

    def _react_part(self, found: ChangeSet, event: Event) -> None:
        """A part of the selected change set decided elsewhere or expired: say so at once (the
        pane reads the run again and shows the part's new status)."""
        if not isinstance(event, TokenCompleted | TokenTimedOut):
            return
        part = found.part_of(event.token_id)
        if part is None:
            return
        what = f"Part {part.number} of {len(found.parts)} ({part.name})"
        if isinstance(event, TokenTimedOut):
            self.message.emit(f"{what} expired: nobody decided it in time.")
        elif event.origin != self.engine.id:
            try:
                verb = "approved" if Decision.from_json(event.output).approve else "rejected"
            except Exception:
                verb = "completed"
            self.message.emit(f"{what} was {verb} elsewhere.")

    async def _refresh_dirty(self) -> None:
        try:
            while self._dirty:
                ids = list(self._dirty)
                self._dirty.clear()
                await self.refresh(ids)
        finally:
            self._refreshing = False

    async def refresh(self, ids: Iterable[str]) -> None:
        """Re-read these runs and put each where it belongs (or nowhere) in the current view."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Run] = {}
        if len(wanted) > BATCH_READ:
            # A burst is nearly always the newest runs: one read of the newest instead of one
            # per run (the engine has no get_runs(ids)); the rest are read one by one.
            wanted_set = set(wanted)
            newest = await self.engine.list_runs(limit=len(wanted) + BATCH_READ)
            found = {r.id: r for r in newest if r.id in wanted_set}
        gone: list[str] = []
        for run_id in wanted:
            if run_id in found:
                continue
            try:
                found[run_id] = await self.engine.get_run(run_id)
            except RunNotFound:
                gone.append(run_id)
        await self._update_mine()
        self.apply(found[i] for i in wanted if i in found)
        if gone:
            self.model.remove(gone)
        if self.selected is not None and self.selected in found:
            await self._load_view(self.selected)

    def apply(self, runs: Iterable[Run]) -> None:
        """Put these (freshly read) runs into the table as the current view wants them."""
        upserts: list[RunRow] = []
        leaving: list[str] = []
        for run in runs:
            row = RunRow.from_run(run)
            present = self.model.get(row.id)
            if present is not None and present.status is not row.status:
                self.model.forget_details(row.id)
            if self._admits(row):
                if present is not None or self.model.covers(row):
                    upserts.append(row)
            elif present is not None:
                if self.linger_s > 0:
                    upserts.append(row)
                    leaving.append(row.id)
                else:
                    self.model.remove([row.id])
        if upserts:
            self.model.upsert(upserts)
        for run_id in leaving:
            self.model.mark_leaving(run_id)
        if leaving:
            QTimer.singleShot(int(self.linger_s * 1000), lambda: self._drop(leaving))

    async def _announce(self, run_ids: list[str]) -> None:
        """`run_waiting` for runs that started waiting: one per run with the agent's summary,
        or one for the lot when many arrive together."""
        if len(run_ids) > ANNOUNCE_EACH:
            self.run_waiting.emit(run_ids[-1], f"{len(run_ids)} new requests await approval")
            return
        for run_id in run_ids:
            review = await self._review(run_id)
            if review is not None:
                self.run_waiting.emit(run_id, f"{review.summary} awaits approval")
            else:
                row = self.model.get(run_id)
                what = row.request if row is not None else f"Run {run_id}"
                self.run_waiting.emit(run_id, f"{what} awaits approval")

    def _drop(self, ids: list[str]) -> None:
        self.model.remove([i for i in ids if self.model.is_leaving(i)])

    async def refresh_counts(self) -> None:
        counts = await self.engine.count_runs()
        self.counts_changed.emit(counts)

    # ------------------------------------------------------------ the selected run

    def select(self, run_id: str | None) -> None:
        """Show this run in the review pane (read its record, steps and token)."""
        if run_id == self.selected and self.current is not None:
            return
        self.selected = run_id
        self.current = None
        if self._loading_view is not None:
            self._loading_view.cancel()
        if run_id is None:
            self.run_view_changed.emit(None)
            return
        self._loading_view = self._spawn(self._load_view(run_id))

    async def run_view(self, run_id: str) -> RunView:
        """Everything the review pane shows for *run_id*, read now (`RunNotFound` when it is
        gone); the selection is left as it is."""
        run = await self.engine.get_run(run_id)
        steps = await self.engine.get_steps(run_id)
        token = await self._token(run.waiting_token_id)
        if token is None:
            tokens = await self.engine.list_tokens(run_id=run_id, limit=1)
            token = tokens[0] if tokens else None
        found = await self._change_set(await self._review(run_id), run_id)
        part_tokens = () if found is None else found.tokens  # read_change_set read them
        reverting = await revert_state(self.engine, run_id) if run.task == TASK_NAME else None
        return RunView.build(
            run, steps, token, change_set=found, part_tokens=part_tokens, revert=reverting
        )

    async def _load_view(self, run_id: str) -> None:
        self._view_reads += 1
        read = self._view_reads
        try:
            view = await self.run_view(run_id)
        except RunNotFound:
            if self.selected == run_id:
                self.current = None
                self.run_view_changed.emit(None)
            return
        if self.selected != run_id or read != self._view_reads:
            # Another read started meanwhile (an event came): it saw the run later, so it
            # has the last word (a change set's part status otherwise went back in time).
            return
        self.current = view
        self.run_view_changed.emit(view)

    async def _tell_who_decided(self, run_id: str, token_id: str) -> None:
        decided = Decided.of(await self._token(token_id), await self._review(run_id))
        if decided is not None:
            when = format_when(decided.at.timestamp(), self._clock())
            self.run_stopped_waiting.emit(run_id, f"Decided elsewhere: {decided.sentence(when)}")

    async def reload(self) -> None:
        if self.selected is not None:
            await self._load_view(self.selected)

    # ------------------------------------------------------------ decisions and requests

    async def decide(self, view: RunView, decision: Decision) -> bool:
        """Complete the run's token with *decision*; False (and a message) when it no longer
        waits, in which case nothing changed."""
        if not view.decidable:
            self.message.emit("This run is not waiting for a decision; nothing was changed.")
            return False
        try:
            await self.submit(view, decision)
        except (EditRefused, OutputRefused, DecisionRefused) as exc:
            self.message.emit(f"Nothing changed, the run still waits: {exc}")
            return False
        except TokenExpired:
            self.message.emit("Nothing changed: the review's deadline passed; the run expires.")
            await self.refresh([view.run.id])
            return False
        except TokenAlreadyFinished as exc:
            # Stops the pane too: the banner and the status bar say who was first.
            text = already_finished(exc.status, exc.by, exc.at, self._clock())
            self.run_stopped_waiting.emit(view.run.id, text)
            await self.refresh([view.run.id])
            return False
        except TokenNotFound:
            self.message.emit("Nothing changed: this request's token no longer exists.")
            await self.refresh([view.run.id])
            return False
        verb = "Approved" if decision.approve else "Rejected"
        what = view.review.summary if view.review is not None else view.row.request
        if view.part is not None and view.change_set is not None:
            verb += f" part {view.part.number} of {len(view.change_set.parts)}"
        self.message.emit(f"{verb}: {what}")
        return True

    async def submit(self, view: RunView, decision: Decision) -> None:
        """Decide *view*'s run, raising what stopped it, in which case nothing changed for the
        run: `NotWaiting`, the engine's errors (`TokenAlreadyFinished` says who was first,
        `DecisionRefused` which rule refused), the agent's (`EditRefused`), or a store failure.
        `decide` is this with each error said in the status bar; bulk decisions collect them."""
        token = view.token
        if token is None or not view.decidable:
            raise NotWaiting(view, self._clock())
        # A part is decided on its own token, having seen its own diffs.
        seen = None if view.part is None or view.review is None else view.review.diff_hash
        await decide(self.engine, self.targets, token.id, decision, seen=seen)

    async def audit_entries(self, run_id: str) -> list[AuditEntry]:
        """The run's audit entries, oldest first."""
        found: list[AuditEntry] = []
        after = 0
        for _ in range(AUDIT_PAGES):
            page = await self.engine.audit_entries(after, limit=AUDIT_PAGE, run_id=run_id)
            found += page
            if len(page) < AUDIT_PAGE:
                break
            after = page[-1].id
        return found

    async def verify_audit(self) -> AuditReport:
        """Walk the store's whole audit trail (every run's entries and the policy's)."""
        return await self.engine.verify_audit()

    async def check_edits(self, view: RunView, edits: tuple[Edit, ...]) -> list[Problem]:
        """What is wrong with approving *view*'s run with *edits* (empty: nothing), checked
        against the target now, so that the reviewer can fix an edit before deciding."""
        if not edits:
            return []
        token_id = None if view.part is None else view.part.token_id
        return await check_edits(self.engine, self.targets, view.run.id, edits, token_id=token_id)

    async def revert_state(self, run_id: str) -> RevertState:
        """Whether *run_id* can be reverted now, and why not."""
        return await revert_state(self.engine, run_id)

    async def request_revert(self, run_id: str) -> str:
        """Start the revert of the applied run *run_id* under this machine's targets; the new
        run's id. `agent.RevertRefused` (and the store's errors) say why not: nothing started."""
        return await revert(self.engine, run_id, targets=self.targets)

    def change_request(self, text: str) -> ChangeRequest:
        """A `ChangeRequest` for *text* under the active target profile."""
        return change_request(self.settings, text)

    async def new_request(self, text: str, *, idempotency_key: str | None = None) -> Run:
        """Trigger a `db-change` run; it shows in the Waiting view once its proposal is ready."""
        change = self.change_request(text)
        run = await request_change(self.engine, change, idempotency_key=idempotency_key)
        self.message.emit(f"Requested: {change.request} (the agent is preparing a proposal)")
        return run

    def set_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.targets.set_profiles(settings.target_profiles())


def _decided_elsewhere(output: Any) -> str:
    try:
        decision = Decision.from_json(output)
    except Exception:
        return "This request was completed elsewhere; the buttons are disabled."
    verb = "approved" if decision.approve else "rejected"
    return f"This request was {verb} elsewhere; the buttons are disabled."
