"""Revert… from the window: undo an applied run with a new run, reviewed like any other.

The reviewer confirms a dialog naming the run and the rows it wrote and what becomes of each;
`Console.request_revert` then starts the revert run (`agent.revert`, under this machine's
targets), which the window selects as soon as it is listed. A revert that may not be requested
(`agent.RevertRefused`: not applied, reverted already, a revert of it still open, a target
profile that points elsewhere) or a store failure is shown in full; nothing was started then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox, QWidget
from sqlalchemy.exc import SQLAlchemyError

from ..agent import AgentError, Outcome, value_text
from ..engine import EngineError
from .console import Console
from .dialogs import ask, confirm_dialog
from .records import RunView
from .review_pane import ReviewPane

FAILURES: tuple[type[Exception], ...] = (AgentError, EngineError, SQLAlchemyError, OSError)
"""What stops a revert request; nothing was started then."""


class RevertDesk(Protocol):
    """What the revert flow needs of the window around it."""

    def show_message(self, text: str) -> None: ...

    def show_new_run(self, run_id: str) -> None:
        """Select the run just started, now or as soon as the table lists it."""

    def focus_table(self) -> None: ...


def _key(image: Mapping[str, Any]) -> str:
    key = ", ".join(f"{k}={value_text(v)}" for k, v in dict(image.get("key") or {}).items())
    return f"{image.get('table')} {key}".strip()


def undo_line(image: Mapping[str, Any]) -> str:
    """What the revert does to one written row (an `images.RowImage` as JSON): "refunds
    id=701: delete the row it inserted", "invoices id=4854: set status back to open (now
    paid)"."""
    op, before, after = image.get("op"), image.get("before") or {}, image.get("after") or {}
    where = _key(image)
    if op == "insert":
        return f"{where}: delete the row it inserted"
    if op == "delete":
        return f"{where}: insert the row it deleted again"
    changed = [name for name in before if name in after and after[name] != before[name]]
    if not changed:
        return f"{where}: nothing to set back"
    values = "; ".join(
        f"{name} back to {value_text(before[name])} (now {value_text(after[name])})"
        for name in changed
    )
    return f"{where}: set {values}"


def confirm_text(view: RunView) -> str:
    """The confirmation of reverting *view*'s run: which run, what it did, what will be
    undone, and that the revert is itself reviewed."""
    review = view.set_review
    what = review.summary if review is not None else view.row.request
    outcome: Outcome | None = view.row.outcome
    lines = [f"Revert run {view.run.id}?", "", f"It applied: {what}"]
    written = () if outcome is None or outcome.written is None else outcome.written
    if written:
        lines += ["", "A new run will undo what it wrote, last written first:"]
        lines += [f"• {undo_line(image)}" for image in reversed(written)]
    lines += [
        "",
        "The revert is reviewed and approved like any change: nothing is written until then. "
        "A row changed since is a conflict, and then nothing is written.",
    ]
    return "\n".join(lines)


class Reverts(QObject):
    """The Revert… flow; one request at a time. Dialogs open over *parent*."""

    def __init__(
        self, console: Console, review: ReviewPane, desk: RevertDesk, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.console = console
        self.review = review
        self.desk = desk
        self.parent_widget = parent
        self.busy = False

    async def revert(self) -> str | None:
        """Confirm and request the revert of the run shown; the new run's id, or None when
        nothing was started (refused, cancelled, failed: the reviewer was told why)."""
        view = self.review.whole
        if self.busy:
            return None
        if view is None or view.revert is None:
            self.desk.show_message("Select an applied db-change run to revert it.")
            return None
        self.busy = True
        self.review.set_busy(True)
        try:
            return await self._revert(view)
        finally:
            self.busy = False
            self.review.set_busy(False)
            self.desk.focus_table()

    async def _revert(self, view: RunView) -> str | None:
        run_id = view.run.id
        try:
            state = await self.console.revert_state(run_id)  # as it is now, not when shown
        except FAILURES as exc:
            await self._failed(run_id, exc)
            return None
        if not state.revertible:
            await self._failed(run_id, state.reason or f"run {run_id} cannot be reverted")
            return None
        box = confirm_dialog(
            self.parent_widget, "Revert this run?", confirm_text(view), "Request revert"
        )
        box.setObjectName("revertConfirmDialog")
        if await ask(box) != QMessageBox.StandardButton.Ok:
            return None
        try:
            new = await self.console.request_revert(run_id)
        except FAILURES as exc:
            await self._failed(run_id, exc)
            return None
        self.desk.show_message(f"Revert requested: run {new}")
        self.desk.show_new_run(new)
        return new

    async def _failed(self, run_id: str, problem: BaseException | str) -> None:
        text = str(problem) or type(problem).__name__
        self.desk.show_message(f"Nothing was started: {text}")
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            f"Cannot revert run {run_id}",
            f"{text}\n\nNothing was started.",
            QMessageBox.StandardButton.Ok,
            self.parent_widget,
        )
        box.setObjectName("revertFailedDialog")
        await ask(box)
