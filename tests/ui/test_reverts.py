"""Revert… in the console: an applied run is undone by a new run, reviewed and approved like any
other; a run that wrote nothing cannot be reverted, and the action says why. Real windows, a
real store and a real target (SQLite files)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from hitl_desktop.agent import DEMO_CHANGE_SET, revert_state
from hitl_desktop.agent.db_change import request_change
from hitl_desktop.config import Settings
from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.app import ConsoleApp
from hitl_desktop.ui.dialogs import RejectDialog
from hitl_desktop.ui.records import View

from .helpers import open_dialog, rows, running_console, until
from .test_change_set_view import BOTH, NOTHING, part_shown, written
from .test_keyboard import key

EMAIL = "Change the email of customer 20 to reviewer20@example.com"


def email(target: Path) -> str:
    [(found,)] = rows(target, "select email from customers where id = 20")
    return str(found)


async def shown(
    app: ConsoleApp, run_id: str, *, decidable: bool = False, done: bool = False
) -> None:
    pane = app.window.review
    await until(
        lambda: (
            pane.view is not None
            and pane.view.run.id == run_id
            and pane.view.revert is not None
            and (pane.can_decide or not decidable)
            and (pane.view.run.status is RunStatus.COMPLETED or not done)
        ),
        what=f"run {run_id} in the review pane",
    )


async def finished(app: ConsoleApp, run_id: str) -> None:
    """Show the finished run *run_id* in the All view."""
    await app.engine.wait_for(run_id, [RunStatus.COMPLETED], timeout=10)
    app.window.set_view(View.ALL)
    await until(lambda: app.model.get(run_id) is not None, what="its row in All")
    app.window.select_run(run_id)
    await shown(app, run_id, done=True)


async def test_revert_of_an_applied_change_set_restores_its_rows(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        window, pane = app.window, app.window.review
        run = await request_change(app.engine, app.console.change_request(DEMO_CHANGE_SET))
        await until(lambda: (r := app.model.get(run.id)) is not None and r.waiting)
        window.select_run(run.id)
        await part_shown(app, run.id, 1)
        assert not window.revert_action.isEnabled()  # waiting: nothing written yet
        key(app, Qt.Key.Key_A)
        await part_shown(app, run.id, 2)
        key(app, Qt.Key.Key_A)
        await finished(app, run.id)
        assert written(target_path) == BOTH
        assert window.revert_action.isEnabled() and pane.revert_button.isVisibleTo(pane)
        assert pane.revert_button.isEnabled()
        [refund_id] = [
            r[0] for r in rows(target_path, "select id from refunds where invoice_id = 1042")
        ]

        window.revert_action.trigger()
        box = await until(lambda: open_dialog(QMessageBox, "revertConfirmDialog"), what="confirm")
        text = box.text()
        assert f"Revert run {run.id}?" in text
        assert f"refunds id={refund_id}: delete the row it inserted" in text
        assert "invoices id=4854: set status back to open (now paid)" in text
        box.button(QMessageBox.StandardButton.Cancel).click()  # changed their mind: nothing
        await until(lambda: open_dialog(QMessageBox) is None, what="the dialog closing")
        assert (await revert_state(app.engine, run.id)).reverted_by == ()

        pane.revert_button.click()
        box = await until(lambda: open_dialog(QMessageBox, "revertConfirmDialog"), what="confirm")
        box.button(QMessageBox.StandardButton.Ok).click()
        new = await until(lambda: reverting(app, run.id), what="the revert run in the pane")
        assert window.status.currentMessage() == f"Revert requested: run {new}"
        # The new run is selected, and waits for review like any other: the inverse diff.
        await shown(app, new, decidable=True)
        assert window.selected_run() == new
        view = pane.view
        assert view is not None and view.review is not None
        diffs = {(d.table, d.op): d for d in view.review.diffs}
        assert set(diffs) == {("refunds", "delete"), ("invoices", "update")}
        assert diffs["invoices", "update"].before is not None
        assert diffs["invoices", "update"].after is not None
        assert diffs["invoices", "update"].before["status"] == "paid"
        assert diffs["invoices", "update"].after["status"] == "open"
        assert f"Reverts run {run.id}" in pane.details.toPlainText()
        assert written(target_path) == BOTH  # not before it is approved

        key(app, Qt.Key.Key_A)
        box = await until(lambda: open_dialog(QMessageBox, "confirmDialog"), what="the delete")
        box.button(QMessageBox.StandardButton.Ok).click()
        done = await app.engine.wait_for(new, [RunStatus.COMPLETED], timeout=10)
        assert done.output["outcome"] == "applied"
        assert written(target_path) == NOTHING
        window.select_run(run.id)
        await shown(app, run.id)
        await until(lambda: f"Reverted by run {new}" in pane.details.toPlainText())
        await until(lambda: not window.revert_action.isEnabled(), what="Revert… disabled")
        assert f"already reverted by run {new}" in window.revert_action.toolTip()


def reverting(app: ConsoleApp, run_id: str) -> str | None:
    """The run the review pane shows, when it is a revert of *run_id*."""
    view = app.window.review.view
    if view is None or view.revert is None or view.revert.reverts != run_id:
        return None
    return view.run.id


async def test_revert_is_disabled_with_its_reason_on_a_rejected_run(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        window, pane = app.window, app.window.review
        before = email(target_path)
        run = await request_change(app.engine, app.console.change_request(EMAIL))
        await until(lambda: (r := app.model.get(run.id)) is not None and r.waiting)
        window.select_run(run.id)
        await shown(app, run.id, decidable=True)
        key(app, Qt.Key.Key_R)
        dialog = await until(lambda: open_dialog(RejectDialog), what="the reject dialog")
        dialog.accept()
        await finished(app, run.id)
        reason = f"run {run.id} ended rejected: nothing was written, there is nothing to revert"
        assert not window.revert_action.isEnabled()
        assert window.revert_action.toolTip() == f"Cannot revert: {reason}"
        assert pane.revert_button.isVisibleTo(pane) and not pane.revert_button.isEnabled()
        assert reason in pane.revert_button.toolTip()
        # Asked anyway (as from a pane read before): the reason in full, and nothing started.
        asked = asyncio.ensure_future(window.decisions.reverts.revert())
        box = await until(lambda: open_dialog(QMessageBox, "revertFailedDialog"), what="refusal")
        assert box.text() == f"{reason}\n\nNothing was started."
        box.button(QMessageBox.StandardButton.Ok).click()
        assert await asyncio.wait_for(asked, 10) is None
        assert open_dialog(QMessageBox, "revertConfirmDialog") is None
        assert (await app.engine.list_runs(limit=10))[0].id == run.id
        assert email(target_path) == before


async def test_a_refused_revert_shows_its_message_in_full_and_starts_nothing(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        window = app.window
        run = await request_change(app.engine, app.console.change_request(EMAIL))
        await until(lambda: (r := app.model.get(run.id)) is not None and r.waiting)
        window.select_run(run.id)
        await shown(app, run.id, decidable=True)
        key(app, Qt.Key.Key_A)
        await finished(app, run.id)
        after = email(target_path)
        # Another console reverts it first: this one's pane still offers Revert….
        other = await app.console.request_revert(run.id)
        assert window.revert_action.isEnabled()
        window.revert_action.trigger()
        box = await until(lambda: open_dialog(QMessageBox, "revertFailedDialog"), what="refusal")
        said = box.text()
        assert said.startswith(f"a revert of run {run.id} was already requested and is still ")
        assert said.endswith(f": run {other}\n\nNothing was started.")
        box.button(QMessageBox.StandardButton.Ok).click()
        assert [r.id for r in await app.engine.list_runs(limit=10)][:2] == [other, run.id]
        assert email(target_path) == after
