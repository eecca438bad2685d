"""Deciding from the window: approve, edit & approve, reject, and new requests.

Each flow is an async slot: dialogs are awaited (`dialogs.ask`), never `exec()`-ed, and the
buttons are disabled while a decision is on its way and restored in `finally`. The flows see the
window only through `Desk`: where to put messages, how to move on to the next waiting run, and
whether a request is on its way; the review pane and the console are given to them.

With several runs selected, Approve and Reject act on the waiting ones among them (`bulk`);
Edit & approve is for one run only. On a change set they decide the part the review pane shows,
then the pane moves on to the next part that waits (the table to the next run once none does).
Revert… is `reverts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox, QWidget

from ..agent import Decision, RequestInvalid
from .bulk import BulkDecisions
from .console import Console
from .dialogs import (
    EditDialog,
    NewRequestDialog,
    RejectDialog,
    ask,
    confirm_dialog,
    confirmation,
)
from .records import RunView
from .reverts import Reverts
from .review_pane import ReviewPane
from .slots import async_slot


class Desk(Protocol):
    """What the decision flows need of the window around them."""

    def show_message(self, text: str) -> None: ...

    def advance_from(self, run_id: str) -> None:
        """Select the next waiting run after *run_id* (a decision on it was sent)."""

    def set_requesting(self, busy: bool) -> None:
        """A new request is on its way (True) or done (False)."""

    def selected_runs(self) -> list[str]:
        """The runs selected in the table, in its order."""
        ...

    def set_deciding_many(self, busy: bool) -> None:
        """Decisions on several runs are on their way (True) or done (False)."""

    def after_bulk(self, run_ids: Sequence[str]) -> None:
        """Decisions on *run_ids* were sent: focus the table on the next waiting run."""

    def focus_table(self) -> None:
        """Give the runs table the keyboard focus (a decision flow ended)."""

    def show_new_run(self, run_id: str) -> None:
        """Select the run just started (a revert), now or as soon as the table lists it."""


class Decisions(QObject):
    """The window's decision flows; one decision at a time. Dialogs open over *parent*."""

    def __init__(
        self,
        console: Console,
        review: ReviewPane,
        desk: Desk,
        parent: QWidget,
        examples: Sequence[str] = (),
    ) -> None:
        super().__init__(parent)
        self.console = console
        self.review = review
        self.desk = desk
        self.parent_widget = parent
        self.examples = tuple(examples)
        self.bulk = BulkDecisions(console, desk, parent)
        self.reverts = Reverts(console, review, desk, parent)
        self._deciding = False

    @property
    def busy(self) -> bool:
        """A decision (or several) is on its way."""
        return self._deciding

    def _decidable(self) -> RunView | None:
        view = self.review.view
        if view is None:
            return None
        if self.console.selected != view.run.id:
            # The pane still shows the run selected before (the new one is being read): a key
            # pressed right after Down must not decide the run the reviewer moved away from.
            self.desk.show_message("The selected run is still loading; nothing was decided.")
            return None
        if not self.review.can_decide:
            if not self._deciding:
                self.desk.show_message(
                    "This run is not waiting for a decision any more; nothing was changed."
                )
            return None
        return view

    @async_slot
    async def approve(self) -> None:
        if not await self._decide_many(approve=True):
            await self._decide(edit=False)

    @async_slot
    async def edit_and_approve(self) -> None:
        if len(self.desk.selected_runs()) > 1:
            self.desk.show_message("Edit & approve is for one run at a time: select only one.")
            return
        await self._decide(edit=True)

    async def _decide_many(self, *, approve: bool) -> bool:
        """With several runs selected, decide the waiting ones (True); else False."""
        run_ids = self.desk.selected_runs()
        if len(run_ids) < 2:
            return False
        if self._deciding:
            return True
        self._deciding = True
        self.review.set_busy(True)
        self.desk.set_deciding_many(True)
        try:
            await self.bulk.decide(run_ids, approve=approve)
        finally:
            self._deciding = False
            self.review.set_busy(False)
            self.desk.set_deciding_many(False)
            self.desk.focus_table()
        return True

    async def _decide(self, *, edit: bool) -> None:
        view = self._decidable()
        if view is None or view.review is None or self._deciding:
            return
        self._deciding = True
        self.review.set_busy(True)
        try:
            edits: tuple[Any, ...] = ()
            if edit:
                dialog = EditDialog(view.review, self.parent_widget)
                if await ask(dialog) != EditDialog.DialogCode.Accepted:
                    return
                edits = dialog.edits()
                problems = await self.console.check_edits(view, edits)
                if problems:
                    # Deciding would end the run as invalid_edit: let the reviewer fix it first.
                    listing = "\n".join(f"• {p}" for p in problems)
                    box = QMessageBox(
                        QMessageBox.Icon.Warning,
                        "These edits cannot be applied",
                        f"{listing}\n\nNothing was decided: edit again, approve or reject.",
                        QMessageBox.StandardButton.Ok,
                        self.parent_widget,
                    )
                    await ask(box)
                    return
            why = confirmation(view.review)
            if why is not None:
                box = confirm_dialog(
                    self.parent_widget,
                    "Approve this change?",
                    f"{view.review.summary}\n\n{why}",
                    "Approve",
                )
                if await ask(box) != QMessageBox.StandardButton.Ok:
                    return
            if not self._still_decidable(view):
                return
            decision = Decision(True, self.console.reviewer, None, edits)
            if await self.console.decide(view, decision):
                await self._move_on(view)
        finally:
            self._deciding = False
            self.review.set_busy(False)
            self.desk.focus_table()

    @async_slot
    async def reject(self) -> None:
        if await self._decide_many(approve=False):
            return
        view = self._decidable()
        if view is None or self._deciding:
            return
        self._deciding = True
        self.review.set_busy(True)
        try:
            summary = view.review.summary if view.review is not None else view.row.request
            if view.part is not None and view.change_set is not None:
                summary = f"Part {view.part.number} of {len(view.change_set.parts)}: {summary}"
            dialog = RejectDialog(summary, self.parent_widget)
            if await ask(dialog) != RejectDialog.DialogCode.Accepted:
                return
            reason = dialog.reason()
            if not self._still_decidable(view):
                return
            if await self.console.decide(view, Decision(False, self.console.reviewer, reason)):
                await self._move_on(view)
        finally:
            self._deciding = False
            self.review.set_busy(False)
            self.desk.focus_table()

    async def _move_on(self, view: RunView) -> None:
        """After a decision on *view*: the next part of its change set that waits, read anew
        (the decided part's status with it), else the next waiting run."""
        if view.part is not None:
            await self.console.reload()
            following = self.review.next_waiting_part(view.part.number)
            if following is not None and self.console.selected == view.run.id:
                self.review.show_part(following, picked=False)
                return
        self.desk.advance_from(view.run.id)

    @async_slot
    async def revert(self) -> None:
        await self.reverts.revert()

    def _still_decidable(self, view: RunView) -> bool:
        """After a dialog: the run (its part, for a change set) may have expired or been decided
        meanwhile."""
        now = self.review.view
        self.review.set_busy(False)
        ok = (
            now is not None
            and now.run.id == view.run.id
            and _token_id(now) == _token_id(view)
            and self.review.can_decide
        )
        self.review.set_busy(True)
        if not ok:
            self.desk.show_message(
                "Nothing changed: this request stopped waiting while you decided."
            )
        return ok

    @async_slot
    async def new_request(self) -> None:
        active = self.console.settings.active_profile()
        dialog = NewRequestDialog(
            None if active is None else active.target_url,
            "offline" if active is None else active.proposer,
            self.examples,
            self.parent_widget,
        )
        if await ask(dialog) != NewRequestDialog.DialogCode.Accepted:
            return
        text = dialog.text()
        self.desk.set_requesting(True)
        try:
            await self.console.new_request(text)
        except RequestInvalid as exc:
            self.desk.show_message(f"Cannot request that: {exc}")
        finally:
            self.desk.set_requesting(False)
            self.desk.focus_table()


def _token_id(view: RunView) -> str | None:
    return None if view.token is None else view.token.id
