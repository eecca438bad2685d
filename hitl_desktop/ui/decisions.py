"""Deciding from the window: approve, edit & approve, reject, and new requests.

Each flow is an async slot: dialogs are awaited (`dialogs.ask`), never `exec()`-ed, and the
buttons are disabled while a decision is on its way and restored in `finally`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox

from ..agent.db_change import RequestInvalid
from ..agent.review import Decision
from .dialogs import (
    EditDialog,
    NewRequestDialog,
    RejectDialog,
    ask,
    confirm_dialog,
    confirmation,
)
from .records import RunView
from .slots import async_slot

if TYPE_CHECKING:
    from .main_window import MainWindow


class Decisions(QObject):
    """The window's decision flows; one decision at a time."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._deciding = False

    def _decidable(self) -> RunView | None:
        view = self.window.review.view
        if view is None:
            return None
        if not self.window.review.can_decide:
            if not self._deciding:
                self.window.show_message(
                    "This run is not waiting for a decision any more; nothing was changed."
                )
            return None
        return view

    @async_slot
    async def approve(self) -> None:
        await self._decide(edit=False)

    @async_slot
    async def edit_and_approve(self) -> None:
        await self._decide(edit=True)

    async def _decide(self, *, edit: bool) -> None:
        view = self._decidable()
        if view is None or view.review is None or self._deciding:
            return
        self._deciding = True
        self.window.review.set_busy(True)
        try:
            edits: tuple[Any, ...] = ()
            if edit:
                dialog = EditDialog(view.review, self.window)
                if await ask(dialog) != EditDialog.DialogCode.Accepted:
                    return
                edits = dialog.edits()
                problems = await self.window.console.check_edits(view, edits)
                if problems:
                    # Deciding would end the run as invalid_edit: let the reviewer fix it first.
                    listing = "\n".join(f"• {p}" for p in problems)
                    box = QMessageBox(
                        QMessageBox.Icon.Warning,
                        "These edits cannot be applied",
                        f"{listing}\n\nNothing was decided: edit again, approve or reject.",
                        QMessageBox.StandardButton.Ok,
                        self.window,
                    )
                    await ask(box)
                    return
            why = confirmation(view.review)
            if why is not None:
                box = confirm_dialog(
                    self.window,
                    "Approve this change?",
                    f"{view.review.summary}\n\n{why}",
                    "Approve",
                )
                if await ask(box) != QMessageBox.StandardButton.Ok:
                    return
            if not self._still_decidable(view):
                return
            decision = Decision(True, self.window.console.reviewer, None, edits)
            if await self.window.console.decide(view, decision):
                self._advance(view.run.id)
        finally:
            self._deciding = False
            self.window.review.set_busy(False)

    @async_slot
    async def reject(self) -> None:
        view = self._decidable()
        if view is None or self._deciding:
            return
        self._deciding = True
        self.window.review.set_busy(True)
        try:
            summary = view.review.summary if view.review is not None else view.row.request
            dialog = RejectDialog(summary, self.window)
            if await ask(dialog) != RejectDialog.DialogCode.Accepted:
                return
            reason = dialog.reason()
            if not self._still_decidable(view):
                return
            if await self.window.console.decide(
                view, Decision(False, self.window.console.reviewer, reason)
            ):
                self._advance(view.run.id)
        finally:
            self._deciding = False
            self.window.review.set_busy(False)

    def _still_decidable(self, view: RunView) -> bool:
        """After a dialog: the run may have expired or been decided meanwhile."""
        now = self.window.review.view
        self.window.review.set_busy(False)
        ok = now is not None and now.run.id == view.run.id and self.window.review.can_decide
        self.window.review.set_busy(True)
        if not ok:
            self.window.show_message(
                "Nothing changed: this request stopped waiting while you decided."
            )
        return ok

    def _advance(self, run_id: str) -> None:
        following = self.window.next_waiting(run_id)
        if following is not None:
            self.window.select_run(following)

    @async_slot
    async def new_request(self) -> None:
        active = self.window.console.settings.active_profile()
        dialog = NewRequestDialog(
            None if active is None else active.target_url,
            "offline" if active is None else active.proposer,
            self.window.examples,
            self.window,
        )
        if await ask(dialog) != NewRequestDialog.DialogCode.Accepted:
            return
        text = dialog.text()
        self.window.new_button.setEnabled(False)
        try:
            await self.window.console.new_request(text)
        except RequestInvalid as exc:
            self.window.show_message(f"Cannot request that: {exc}")
        finally:
            self.window.new_button.setEnabled(True)
