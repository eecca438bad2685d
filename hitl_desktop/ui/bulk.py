"""Deciding several runs at once: the waiting runs of the table's selection.

One dialog confirms them all (and names the runs of the selection that are skipped because they
do not wait), then each is decided on its own through `Console.submit`, the path a single
decision takes, so that each is checked and audited by itself and one failure stops none of the
others. One summary says which went through and which did not, and why.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.exc import SQLAlchemyError

from ..agent import AgentError, Decision, EditRefused, Review
from ..engine import (
    DecisionRefused,
    EngineError,
    OutputRefused,
    RunNotFound,
    TokenAlreadyFinished,
    TokenExpired,
)
from .console import Console, NotWaiting
from .dialogs import ask, confirmation
from .plain_text import plain_label
from .records import RunView, already_finished

STORE_FAILURES: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError)
"""What a store that fails under a decision raises (a lost server, a locked or full file)."""
FAILURES: tuple[type[BaseException], ...] = (EngineError, AgentError, NotWaiting, *STORE_FAILURES)
"""What stops one run's decision; the next run is decided all the same."""


class BulkDesk(Protocol):
    """What a bulk decision needs of the window around it."""

    def show_message(self, text: str) -> None: ...

    def after_bulk(self, run_ids: Sequence[str]) -> None:
        """Decisions on *run_ids* were sent: focus the table on the next waiting run."""


def short_id(run_id: str) -> str:
    """The run id's short form, as the dialogs list runs: its random end (it starts with the
    time it was made, alike for runs requested together). The table's filter finds it."""
    return run_id[-8:]


def changes_text(review: Review | None) -> str:
    """Which tables a proposal writes and how: "refunds: 1 insert", "customers: 2 updates"."""
    if review is None:
        return "no proposal"
    ops = ", ".join(f"{n} {op}{'s' if n != 1 else ''}" for op, n in sorted(review.ops.items()))
    return f"{', '.join(review.tables) or 'no table'}: {ops or 'no change'}"


@dataclass(frozen=True, slots=True)
class Pick:
    """One run of the selection as read when the reviewer asked; *view* None: it is gone."""

    run_id: str
    view: RunView | None

    @property
    def waiting(self) -> bool:
        return self.view is not None and self.view.decidable

    @property
    def summary(self) -> str:
        view = self.view
        if view is None:
            return "(this run no longer exists)"
        return view.review.summary if view.review is not None else view.row.request

    def line(self) -> str:
        """ "1a2b3c4d  Refund $20 on invoice 1042 (refunds: 1 insert)", then why a second look
        (deletes, several rows) or, for a run that does not wait, where it is."""
        text = f"{short_id(self.run_id)}  {self.summary}"
        view = self.view
        if view is None:
            return text
        text += f" ({changes_text(view.review)})"
        if view.change_set is not None and view.row.waiting:
            return f"{text} — a change set: select it alone to decide its parts one by one"
        if not self.waiting:
            return f"{text} — {view.row.state}"
        why = None if view.review is None else confirmation(view.review)
        return text if why is None else f"{text} — {why}"


SKIPPED = "Skipped (each line says why: not waiting, or a change set to decide part by part):"


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one run's decision: *error* None when it went through."""

    pick: Pick
    error: str | None = None


def why_not(exc: BaseException, now: float) -> str:
    """Why a run's decision did not go through, in a line; nothing changed for that run."""
    if isinstance(exc, TokenExpired):
        return "the review's deadline passed first; the run expires, nothing was written"
    if isinstance(exc, TokenAlreadyFinished):
        return already_finished(exc.status, exc.by, exc.at, now)
    if isinstance(exc, DecisionRefused):
        return f"refused by the review's rule: {exc.reason}"
    if isinstance(exc, OutputRefused):
        return f"refused by the task's check: {exc.reason}"
    if isinstance(exc, EditRefused):
        return str(exc)
    if isinstance(exc, STORE_FAILURES):
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        return f"store error: {lines[0]}"
    return str(exc)


class BulkDialog(QDialog):
    """A heading, a list of runs, optionally a comment, and the buttons: the confirmation of a
    bulk decision and its summary look alike."""

    def __init__(
        self,
        title: str,
        heading: str,
        listing: str,
        parent: QWidget | None,
        *,
        ok: str | None = None,
        comment: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.heading = plain_label(QLabel(heading))
        self.heading.setObjectName("bulkHeading")
        self.heading.setWordWrap(True)
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        self.listing = QPlainTextEdit(listing)
        self.listing.setObjectName("bulkListing")
        self.listing.setReadOnly(True)
        self.listing.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.listing.setTabChangesFocus(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.listing, 1)
        self.comment_edit: QPlainTextEdit | None = None
        if comment:
            self.comment_edit = QPlainTextEdit()
            self.comment_edit.setObjectName("bulkComment")
            self.comment_edit.setPlaceholderText(
                "Reason (optional), the same for every run, shown to the requesters"
            )
            self.comment_edit.setTabChangesFocus(True)
            self.comment_edit.setMaximumHeight(self.fontMetrics().lineSpacing() * 4 + 12)
            layout.addWidget(self.comment_edit)
        if ok is None:
            self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
            self.buttons.rejected.connect(self.accept)
        else:
            self.buttons = QDialogButtonBox(
                QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
            )
            self.ok_button.setText(ok)
            self.buttons.accepted.connect(self.accept)
            self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.resize(640, 380)
        if self.comment_edit is not None:
            self.comment_edit.setFocus(Qt.FocusReason.OtherFocusReason)

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def comment(self) -> str | None:
        if self.comment_edit is None:
            return None
        return self.comment_edit.toPlainText().strip() or None


def _runs(n: int) -> str:
    return f"{n:,} run{'s' if n != 1 else ''}"


def _section(title: str, lines: Sequence[str]) -> str:
    return title + "\n" + "\n".join(f"  • {line}" for line in lines)


def confirm_dialog(
    approve: bool, waiting: Sequence[Pick], skipped: Sequence[Pick], parent: QWidget | None
) -> BulkDialog:
    """ "Approve 5 runs?", the runs listed, those skipped named; Reject asks one comment."""
    verb = "Approve" if approve else "Reject"
    heading = f"{verb} {_runs(len(waiting))}?"
    if not approve:
        heading += " Nothing will be written for them."
    sections = [_section(f"{verb}:", [p.line() for p in waiting])]
    if skipped:
        sections.append(_section(SKIPPED, [p.line() for p in skipped]))
    dialog = BulkDialog(
        f"{verb} {_runs(len(waiting))}",
        heading,
        "\n\n".join(sections),
        parent,
        ok=f"{verb} {_runs(len(waiting))}",
        comment=not approve,
    )
    dialog.setObjectName("bulkConfirmDialog")
    return dialog


def summary_dialog(
    approve: bool, results: Sequence[Result], skipped: Sequence[Pick], parent: QWidget | None
) -> BulkDialog:
    """Which runs went through, which did not and why, and which were skipped."""
    verb = "Approved" if approve else "Rejected"
    done = [r for r in results if r.error is None]
    failed = [r for r in results if r.error is not None]
    if not failed:
        heading = f"{verb} {_runs(len(done))}."
    elif not done:
        heading = f"None of the {_runs(len(failed))} went through; nothing was changed for them."
    else:
        heading = (
            f"{verb} {len(done):,} of {_runs(len(results))}; {len(failed):,} did not go through."
        )
    sections = []
    if done:
        sections.append(_section(f"{verb}:", [r.pick.line() for r in done]))
    if failed:
        sections.append(
            _section(
                "Did not go through (nothing changed for these):",
                [f"{r.pick.line()}\n      {r.error}" for r in failed],
            )
        )
    if skipped:
        sections.append(_section(SKIPPED, [p.line() for p in skipped]))
    dialog = BulkDialog(f"{verb}: summary", heading, "\n\n".join(sections), parent)
    dialog.setObjectName("bulkResultDialog")
    return dialog


class BulkDecisions:
    """Approve or reject the waiting runs among several selected ones, each on its own."""

    def __init__(
        self,
        console: Console,
        desk: BulkDesk,
        parent: QWidget,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.console = console
        self.desk = desk
        self.parent_widget = parent
        self._clock = clock

    async def pick(self, run_ids: Sequence[str]) -> list[Pick]:
        """The selected runs as they are now, in the table's order."""
        picks = []
        for run_id in run_ids:
            try:
                picks.append(Pick(run_id, await self.console.run_view(run_id)))
            except RunNotFound:
                picks.append(Pick(run_id, None))
        return picks

    async def decide(self, run_ids: Sequence[str], *, approve: bool) -> list[Result] | None:
        """Confirm, decide each waiting run of *run_ids*, then summarise; None when nothing was
        sent (no run waits, or the reviewer cancelled)."""
        picks = await self.pick(run_ids)
        waiting = [p for p in picks if p.waiting]
        skipped = [p for p in picks if not p.waiting]
        if not waiting:
            self.desk.show_message(
                f"None of the {_runs(len(picks))} selected waits for a decision; "
                "nothing was changed."
            )
            return None
        dialog = confirm_dialog(approve, waiting, skipped, self.parent_widget)
        if await ask(dialog) != QDialog.DialogCode.Accepted:
            return None
        decision = Decision(approve, self.console.reviewer, dialog.comment())
        doing = "Approving" if approve else "Rejecting"
        results = []
        for i, pick in enumerate(waiting, start=1):
            self.desk.show_message(f"{doing} {i:,} of {len(waiting):,}…")
            assert pick.view is not None  # a waiting pick has its view
            try:
                await self.console.submit(pick.view, decision)
            except FAILURES as exc:
                results.append(Result(pick, why_not(exc, self._clock())))
            else:
                results.append(Result(pick))
        failed = [r.pick.run_id for r in results if r.error is not None]
        if failed:  # the runs that went through are re-read through their events
            # A store that failed may fail again: the summary says so, the events catch up.
            with contextlib.suppress(*FAILURES):
                await self.console.refresh(failed)
        went = len(results) - len(failed)
        self.desk.show_message(
            f"{'Approved' if approve else 'Rejected'} {went:,} of {_runs(len(results))}"
            + (f"; {len(failed):,} did not go through" if failed else "")
        )
        await ask(summary_dialog(approve, results, skipped, self.parent_widget))
        self.desk.after_bulk([p.run_id for p in picks])
        return results
