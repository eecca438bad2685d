"""The review pane: the selected run's request, the agent's summary and rationale, its diff, the
timeline of its steps, and the decision buttons.

A change set shows its parts above the diff (`change_set_view`): the pane shows, and the buttons
decide, the part picked there (`RunView.for_part`). A finished run has a Revert… button, and
its details link the runs it reverts or is reverted by.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, Qt, QTimer, QUrl, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..engine import RunStatus, Step, TokenStatus
from .change_set_view import PartsView, note_text
from .diff_view import DARK, LIGHT, Colours, DiffView
from .plain_text import plain_label, tooltip
from .records import (
    RunView,
    format_countdown,
    format_duration,
    format_time,
    format_when,
    part_status,
    revert_hint,
)
from .relied_on import ReliedOnView
from .runs_model import is_dark


def _ms(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 60 else format_duration(seconds)


def timeline_html(view: RunView, colours: Colours, now: float) -> str:
    """The run's steps in order, with durations and errors, then where it is now."""
    rows = []
    waited = None
    token = view.token
    if token is not None and token.completed_at is not None:
        waited = (token.completed_at - token.created_at).total_seconds()
    for step in view.steps:
        rows.append(_step_row(step, colours, waited if step.kind == "wait" else None))
    run = view.run
    if run.status is RunStatus.WAITING:
        since = run.updated_at.timestamp()
        rows.append(
            f"<tr><td width='18'>○</td><td><b>waiting for review</b></td>"
            f"<td align='right'>{format_duration(now - since)}</td></tr>"
        )
    elif run.status is RunStatus.FAILED and run.error:
        rows.append(
            f"<tr><td width='18' style='color:{colours.op_delete}'>✗</td>"
            f"<td colspan='2' style='color:{colours.op_delete}'>{html.escape(run.error)}</td></tr>"
        )
    if not rows:
        return f"<p style='color:{colours.muted}'>No steps recorded yet.</p>"
    return "<table cellspacing='0' cellpadding='2' width='100%'>" + "".join(rows) + "</table>"


def who_html(view: RunView, colours: Colours, now: float) -> str:
    """Who decided (the store's identity, the decision's display name beside it), when, with
    what comment and edits; and who requested the run."""
    parts = []
    rule = rule_text(view, now)
    if rule is not None:
        parts.append(f"<p id='rule'>{html.escape(rule)}</p>")
    so_far = approvals_text(view, now)
    if so_far is not None:
        parts.append(f"<p id='approvals'><b>{html.escape(so_far)}</b></p>")
    decided = view.decided
    if decided is not None:
        sentence = decided.sentence(format_when(decided.at.timestamp(), now))
        parts.append(f"<p id='decided'>{html.escape(sentence)}</p>")
    run = view.run
    if run.created_by is not None:
        when = format_when(run.created_at.timestamp(), now)
        parts.append(
            f"<p id='requested' style='color:{colours.muted}'>Requested by "
            f"{html.escape(run.created_by)} at {when}</p>"
        )
    return "".join(parts)


def rule_text(view: RunView, now: float) -> str | None:
    """What deciding this review takes, when a policy rule governs it: "Rule 'big refunds':
    2 approvals by finance, not by the requester; overdue: lead may decide too"."""
    token = view.token
    req = None if token is None else token.requirement
    if req is None or req.rule is None:
        return None
    who = f" by {', '.join(req.approvers)}" if req.approvers else " by anyone"
    plural = "approval" if req.approvals == 1 else "approvals"
    text = f"Rule '{req.rule}': {req.approvals} {plural}{who}"
    if not req.self_approval:
        text += ", not by the requester"
    waiting = token is not None and token.status is TokenStatus.WAITING
    if waiting and token is not None and req.escalate_to and req.remind_after is not None:
        due = token.created_at.timestamp() + req.remind_after
        escalated = ", ".join(req.escalate_to)
        if now >= due:
            text += f"; overdue since {format_when(due, now)}: {escalated} may decide too"
        else:
            text += f"; {escalated} may decide too from {format_when(due, now)}"
    return text


def approvals_text(view: RunView, now: float) -> str | None:
    """The approvals so far on a review that needs more than one: "1 of 2: ana, 10:42"."""
    token = view.token
    req = None if token is None else token.requirement
    if token is None or req is None or req.approvals < 2:
        return None
    approved = [v for v in token.verdicts if v.approve]
    names = ", ".join(f"{v.reviewer}, {format_when(v.at.timestamp(), now)}" for v in approved)
    text = f"{len(approved)} of {req.approvals}"
    return f"{text}: {names}" if names else f"{text} approvals so far"


def _step_row(step: Step, colours: Colours, waited: float | None = None) -> str:
    mark = "✓" if step.ok else "✗"
    colour = colours.op_insert if step.ok else colours.op_delete
    label = step.name if step.kind == "step" else f"{step.kind} {step.name}"
    if step.kind == "wait":
        label = "reviewer decided" if step.ok else "nobody decided in time"
    elif step.kind == "token":
        label = "review requested"
    extra = f" ×{step.attempts}" if step.attempts > 1 else ""
    error = ""
    if step.error:
        error = f"<br><span style='color:{colours.op_delete}'>{html.escape(step.error)}</span>"
    return (
        f"<tr><td width='18' style='color:{colour}'>{mark}</td>"
        f"<td>{html.escape(label)}{extra}{error}</td>"
        f"<td align='right' width='70' style='color:{colours.muted}'>"
        f"{_ms(step.duration_s if waited is None else waited)}</td>"
        "</tr>"
    )


RUN_LINK = "run:"
"""The scheme of a link to another run in the details (a revert's, or the run it reverts)."""

_FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


def _run_link(run_id: str) -> str:
    return f"<a href='{RUN_LINK}{html.escape(run_id)}'>run {html.escape(run_id)}</a>"


def revert_html(view: RunView) -> str:
    """ "Reverts run X", "Reverted by run Y", "Revert requested: run Z", each run a link."""
    state = view.revert
    if state is None:
        return ""
    lines = []
    if state.reverts is not None:
        lines.append(f"Reverts {_run_link(state.reverts)}")
    for other in state.reverted_by:
        if other == state.reverted:
            lines.append(f"Reverted by {_run_link(other)}")
        else:
            lines.append(f"Revert requested: {_run_link(other)}")
    return "".join(f"<p id='revert'>{line}</p>" for line in lines)


def part_html(view: RunView, colours: Colours) -> str:
    """The head of a change set's part: "Part 1 of 2: Refund $20 on invoice 1042", its status."""
    part, found = view.part, view.change_set
    if part is None or found is None:
        return ""
    note = note_text(found)
    return (
        f"<h4 id='part'>Part {part.number} of {len(found.parts)}: {html.escape(part.name)}</h4>"
        f"<p style='color:{colours.muted}'>Status: {html.escape(part_status(part))}</p>"
        + ("" if note is None else f"<p style='color:{colours.op_delete}'>{html.escape(note)}</p>")
    )


def details_html(view: RunView, colours: Colours, now: float) -> str:
    """Outcome, who decided and who requested it, summary, rationale, who proposed it and the
    timeline (for a change set: the run's outcome, summary and rationale; the picked part's
    status, rule and decision)."""
    parts = []
    review = view.set_review
    outcome = view.row.outcome
    if outcome is not None:
        colour = colours.op_insert if outcome.outcome == "applied" else colours.op_delete
        if outcome.outcome in ("rejected", "expired"):
            colour = colours.muted
        state, message = view.row.state, outcome.message
        if message.lower().startswith(state):  # "rejected by ana: …" names the state already
            head, rest = message[: len(state)].capitalize(), message[len(state) :]
        else:
            head, rest = state.capitalize(), f": {message}"
        parts.append(f"<p><b style='color:{colour}'>{html.escape(head)}</b>{html.escape(rest)}</p>")
        for problem in outcome.problems:
            parts.append(
                f"<p style='color:{colours.op_delete}'>• "
                f"{html.escape(str(problem.get('message', problem)))}</p>"
            )
        for conflict in outcome.conflicts:
            parts.append(
                f"<p style='color:{colours.op_delete}'>• {html.escape(str(conflict.get('table')))}"
                f" {html.escape(str(conflict.get('key')))}: "
                f"{html.escape(str(conflict.get('message')))}</p>"
            )
    parts.append(revert_html(view))
    parts.append(part_html(view, colours))
    parts.append(who_html(view, colours, now))
    if review is not None:
        parts.append(f"<h4>Summary</h4><p>{html.escape(review.summary)}</p>")
        parts.append(f"<h4>Rationale</h4><p>{html.escape(review.rationale)}</p>")
        parts.append(
            f"<p style='color:{colours.muted}'>Proposed by {html.escape(review.proposer)} for "
            f"{html.escape(review.target)}</p>"
        )
    elif view.run.status in (RunStatus.QUEUED, RunStatus.EXECUTING):
        parts.append(f"<p style='color:{colours.muted}'>The agent is preparing a proposal…</p>")
    parts.append("<h4>Timeline</h4>")
    parts.append(timeline_html(view, colours, now))
    parts.append(
        f"<p style='color:{colours.muted}'>Run {html.escape(view.run.id)} · "
        f"{html.escape(view.run.task)} · created "
        f"{format_time(view.run.created_at.timestamp(), now)}</p>"
    )
    return "".join(parts)


class ReviewPane(QWidget):
    """Shows one `RunView`; emits what the reviewer asks for."""

    approve_requested = Signal()
    reject_requested = Signal()
    edit_requested = Signal()
    revert_requested = Signal()
    run_link_activated = Signal(str)
    """A link to another run (a revert's, or the run it reverts) was followed: its id."""

    def __init__(
        self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self.view: RunView | None = None
        """What is shown and decided: the run's view, or for a change set its picked part's."""
        self.whole: RunView | None = None
        """The run's view as the console read it (a change set's with all its parts)."""
        self._part: int | None = None
        self._picked = False
        self._stopped: str | None = None
        self._busy = False

        # The title is the request and the banner can quote an outcome: plain text, like
        # everything a run or the model wrote.
        self.title = plain_label(QLabel("Select a run to review it"))
        self.title.setObjectName("reviewTitle")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.state = plain_label(QLabel(""))
        self.state.setObjectName("reviewState")
        self.banner = plain_label(QLabel(""))
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)

        self.details = QTextBrowser()
        self.details.setObjectName("reviewDetails")
        self.details.setOpenLinks(False)
        self.details.anchorClicked.connect(self._on_link)
        self.diff = DiffView()
        self.parts = PartsView()
        self.parts.part_chosen.connect(self.show_part)
        changes = QWidget()
        changes_layout = QVBoxLayout(changes)
        changes_layout.setContentsMargins(0, 0, 0, 0)
        changes_layout.setSpacing(0)
        changes_layout.addWidget(self.parts)
        changes_layout.addWidget(self.diff, 1)
        # What the proposal relied on sits under what it writes, so both are read together.
        self.relied_on = ReliedOnView()
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(changes)
        right.addWidget(self.relied_on)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        right.setChildrenCollapsible(False)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.details)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        self.splitter = split

        self.countdown = plain_label(QLabel(""))
        self.countdown.setObjectName("countdown")
        self.approve_button = QPushButton("Approve")
        self.approve_button.setObjectName("approveButton")
        self.approve_button.setToolTip("Approve and write the change (A or Ctrl+Enter)")
        bold = self.approve_button.font()
        bold.setBold(True)
        self.approve_button.setFont(bold)
        self.reject_button = QPushButton("Reject…")
        self.reject_button.setObjectName("rejectButton")
        self.reject_button.setToolTip("Reject; nothing is written (R)")
        self.edit_button = QPushButton("Edit && approve…")
        self.edit_button.setObjectName("editButton")
        self.edit_button.setToolTip("Change the values, then approve (E)")
        self.revert_button = QPushButton("Revert…")
        self.revert_button.setObjectName("revertButton")
        self.revert_button.setAccessibleName("Revert")
        self.revert_button.setAccessibleDescription(
            "Start a run that undoes what this run wrote; it is reviewed like any change"
        )
        self.revert_button.clicked.connect(self.revert_requested)
        for button in (
            self.approve_button,
            self.reject_button,
            self.edit_button,
            self.revert_button,
        ):
            button.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.details.setAccessibleName("Run details")
        self.details.setAccessibleDescription(
            "The selected run's outcome, summary, rationale and timeline"
        )
        self.approve_button.setAccessibleName("Approve")
        self.approve_button.setAccessibleDescription(
            "Approve the selected run and write its change to the target database (A)"
        )
        self.reject_button.setAccessibleName("Reject")
        self.reject_button.setAccessibleDescription(
            "Reject the selected run with a reason; nothing is written (R)"
        )
        self.edit_button.setAccessibleName("Edit and approve")
        self.edit_button.setAccessibleDescription(
            "Change the proposed values, then approve the selected run (E)"
        )
        self.approve_button.clicked.connect(self.approve_requested)
        self.reject_button.clicked.connect(self.reject_requested)
        self.edit_button.clicked.connect(self.edit_requested)

        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.state, 0, Qt.AlignmentFlag.AlignTop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.countdown, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.reject_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.approve_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(head)
        layout.addWidget(self.banner)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)

        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self.tick)
        self._tick.start()
        self.set_view(None)

    # ------------------------------------------------------------ state

    @property
    def can_decide(self) -> bool:
        view = self.view
        if view is None or not view.decidable or self._stopped is not None or self._busy:
            return False
        expires = view.expires_at
        return expires is None or expires > self._clock()

    def set_view(self, view: RunView | None) -> None:
        """Show the run's view as the console read it; for a change set the part picked
        before (the same run read again), else the first part that waits."""
        same_run = view is not None and self.whole is not None and view.run.id == self.whole.run.id
        self.whole = view
        found = None if view is None else view.change_set
        if found is None:
            self._part = None
        elif (
            not same_run
            or self._part is None
            or self._part > len(found.parts)
            # Decided elsewhere, or expired, while shown without being picked: move on.
            or (not self._picked and found.parts[self._part - 1].status != "waiting")
        ):
            waiting = found.waiting()
            if not same_run or self._part is None or waiting:
                self._part = waiting[0].number if waiting else 1
                self._picked = False
        self.parts.set_change_set(found, self._part)
        self._show(view if view is None or self._part is None else view.for_part(self._part))

    def show_part(self, number: int, *, picked: bool = True) -> None:
        """Show (and decide) part *number* of the change set shown; *picked*: the reviewer
        chose it (it stays shown once decided elsewhere; a part shown for them moves on)."""
        whole = self.whole
        if whole is None or whole.change_set is None or number == self._part:
            return
        if not 1 <= number <= len(whole.change_set.parts):
            return
        self._part = number
        self._picked = picked
        if self.parts.current != number:
            self.parts.choose(number)
        self._stopped = None
        self._show_banner(None)
        self._show(whole.for_part(number))

    def next_waiting_part(self, after: int) -> int | None:
        """The part after part *after* (or else before it) that waits, for moving on once it
        was decided; None when no other part waits."""
        whole = self.whole
        if whole is None or whole.change_set is None:
            return None
        waiting = [p.number for p in whole.change_set.waiting() if p.number != after]
        later = [n for n in waiting if n > after]
        return next(iter(later or waiting), None)

    def _show(self, view: RunView | None) -> None:
        same_run = view is not None and self.view is not None and view.run.id == self.view.run.id
        self.view = view
        if not same_run or (view is not None and view.decidable):
            self._stopped = None
        if view is None:
            self.title.setText("Select a run to review it")
            self.state.setText("")
            self.details.setHtml("")
            self.diff.set_review(None)
            self.relied_on.set_review(None)
            self._show_banner(None)
        else:
            review = view.set_review
            self.title.setText(review.request if review else view.row.request)
            self.state.setText(view.row.state)
            self.refresh_html()
            if not same_run or view.review is not self.diff._review:
                self.diff.set_review(view.review)
                self.relied_on.set_review(view.review)
            if not same_run:
                self._show_banner(None)
        self._update_buttons()
        self.tick()

    def refresh_html(self) -> None:
        if self.view is None:
            return
        colours = DARK if is_dark(self.palette()) else LIGHT
        scroll = self.details.verticalScrollBar().value()
        self.details.setHtml(details_html(self.view, colours, self._clock()))
        self.details.verticalScrollBar().setValue(scroll)
        self.diff.refresh_html()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.refresh_html()

    def stop(self, message: str) -> None:
        """The run can no longer be decided (expired, decided elsewhere): disable at once."""
        self._stopped = message
        self._show_banner(message)
        self._update_buttons()

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_buttons()

    def _show_banner(self, message: str | None) -> None:
        self.banner.setText(message or "")
        self.banner.setVisible(bool(message))

    def _update_buttons(self) -> None:
        ok = self.can_decide
        view = self.view
        editable = (
            ok
            and view is not None
            and view.review is not None
            and any(d.op != "delete" for d in view.review.diffs)
        )
        self.approve_button.setEnabled(ok)
        self.reject_button.setEnabled(ok)
        self.edit_button.setEnabled(editable)
        state = None if view is None else view.revert
        finished = view is not None and view.run.status in _FINISHED
        self.revert_button.setVisible(state is not None and finished)
        self.revert_button.setEnabled(state is not None and state.revertible and not self._busy)
        self.revert_button.setToolTip(tooltip(revert_hint(state)))

    def _on_link(self, url: QUrl) -> None:
        text = url.toString()
        if text.startswith(RUN_LINK):
            self.run_link_activated.emit(text.removeprefix(RUN_LINK))

    def tick(self) -> None:
        """Once a second: the countdown, and disable the buttons the moment the token expires."""
        view = self.view
        if view is None or not view.decidable:
            self.countdown.setText("")
            return
        expires = view.expires_at
        now = self._clock()
        if expires is not None:
            text = format_countdown(expires, now)
            self.countdown.setText("Expired" if text == "expired" else f"Expires in {text}")
            if expires <= now and self._stopped is None:
                self.stop("This request expired: nobody decided in time. Nothing was written.")
                return
        self._update_buttons()
