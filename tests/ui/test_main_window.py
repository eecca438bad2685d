"""The console end to end: real widgets, the real engine with the db-change task, real SQLite
files for the store and the target, decisions through the real buttons and keys."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from hitl_desktop.agent.db_change import ChangeRequest, request_change
from hitl_desktop.agent.review import Decision
from hitl_desktop.config import Settings
from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.app import ConsoleApp
from hitl_desktop.ui.dialogs import EditDialog, NewRequestDialog, RejectDialog
from hitl_desktop.ui.records import View
from tests.agent.helpers import seen

from .helpers import open_dialog, rows, running_console, until

REFUND = "Refund $20 on invoice 1042"
EMAIL = "Change the email of customer 23 to jonas@schmidt.example"
DELETE = "Delete refund 12"


async def waiting_run(app: ConsoleApp, text: str, **kw: object) -> str:
    """Request *text* and wait until its row is in the Waiting table."""
    change = app.console.change_request(text)
    if kw:
        change = ChangeRequest(**{**change.to_json(), **kw})  # type: ignore[arg-type]
    run = await request_change(app.engine, change)
    await until(
        lambda: (r := app.model.get(run.id)) is not None and r.waiting, what=f"{text} waiting"
    )
    return run.id


async def review_ready(app: ConsoleApp, run_id: str) -> None:
    app.window.select_run(run_id)
    pane = app.window.review
    await until(
        lambda: pane.view is not None and pane.view.run.id == run_id and pane.can_decide,
        what="the review pane ready to decide",
    )


async def outcome(app: ConsoleApp, run_id: str) -> str:
    run = await app.engine.wait_for(run_id, [RunStatus.COMPLETED, RunStatus.FAILED], timeout=10)
    assert run.status is RunStatus.COMPLETED, run.error
    return str(run.output["outcome"])


async def test_a_row_appears_when_a_run_pauses(settings: Settings) -> None:
    async with running_console(settings) as app:
        assert app.model.rowCount() == 0
        run_id = await waiting_run(app, REFUND)
        row = app.model.get(run_id)
        assert row is not None and row.request == REFUND and row.state == "waiting"
        # The review and the token are read lazily for the painted row: tables, rows, countdown.
        await until(lambda: app.model.details(run_id) is not None, what="details")
        details = app.model.details(run_id)
        assert details is not None and details.tables == ("refunds",) and details.rows == 1
        assert details.expires_at is not None
        at = app.window.proxy.row_of(run_id)
        texts = [app.window.proxy.index(at, c).data() for c in range(8)]
        assert texts[0] == "db-change" and texts[2] == "refunds" and texts[3] == "1 insert"
        assert texts[5].startswith("23h") and texts[7] == "waiting"


async def test_approve_button_resumes_the_run_and_writes_the_target(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, REFUND)
        await review_ready(app, run_id)
        pane = app.window.review
        assert pane.diff.browser.toPlainText().count("20.00") >= 1
        before = rows(target_path, "select count(*) from refunds where invoice_id = 1042")
        QTest.mouseClick(pane.approve_button, Qt.MouseButton.LeftButton)
        assert await outcome(app, run_id) == "applied"
        after = rows(target_path, "select count(*) from refunds where invoice_id = 1042")
        assert after[0][0] == before[0][0] + 1
        # The row leaves the Waiting view; the All view shows the outcome in it.
        await until(lambda: app.model.get(run_id) is None, what="the row to leave Waiting")
        app.window.set_view(View.ALL)
        await until(lambda: (r := app.model.get(run_id)) is not None and r.state == "applied")


async def test_reject_asks_for_a_reason_and_leaves_the_target_unchanged(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, EMAIL)
        await review_ready(app, run_id)
        before = rows(target_path, "select email from customers where id = 23")
        QTest.mouseClick(app.window.review.reject_button, Qt.MouseButton.LeftButton)
        dialog = await until(lambda: open_dialog(RejectDialog), what="the reject dialog")
        dialog.reason_edit.setPlainText("wrong customer")
        dialog.accept()
        assert await outcome(app, run_id) == "rejected"
        run = await app.engine.get_run(run_id)
        assert run.output["comment"] == "wrong customer" and run.output["reviewer"] == "tester"
        assert rows(target_path, "select email from customers where id = 23") == before


async def test_a_delete_asks_for_confirmation_and_cancel_changes_nothing(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, DELETE)
        await review_ready(app, run_id)
        QTest.keyClick(app.window.table, Qt.Key.Key_A)  # approve from the keyboard
        box = await until(lambda: open_dialog(QMessageBox), what="the confirmation")
        box.button(QMessageBox.StandardButton.Cancel).click()
        await until(lambda: app.window.review.can_decide, what="buttons back after cancel")
        assert (await app.engine.get_run(run_id)).status is RunStatus.WAITING
        QTest.keyClick(app.window.table, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        box = await until(lambda: open_dialog(QMessageBox), what="the confirmation again")
        box.button(QMessageBox.StandardButton.Ok).click()
        assert await outcome(app, run_id) == "applied"
        assert rows(target_path, "select count(*) from refunds where id = 12") == [(0,)]


async def test_after_a_decision_the_selection_moves_to_the_next_waiting_run(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        first = await waiting_run(app, EMAIL)
        second = await waiting_run(app, "Move customer 17 to the annual plan")
        await review_ready(app, second)  # newest first: the second request is on top
        QTest.keyClick(app.window.table, Qt.Key.Key_A)
        await until(lambda: app.window.selected_run() == first, what="selection on the next run")
        assert await outcome(app, second) == "applied"
        await until(lambda: app.window.review.can_decide, what="the next review")
        QTest.keyClick(app.window.table, Qt.Key.Key_R)
        dialog = await until(lambda: open_dialog(RejectDialog), what="the reject dialog")
        dialog.accept()
        assert await outcome(app, first) == "rejected"


async def test_an_invalid_edit_is_refused_before_deciding_and_the_run_keeps_waiting(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, REFUND)
        await review_ready(app, run_id)
        before = rows(target_path, "select count(*) from refunds")
        QTest.mouseClick(app.window.review.edit_button, Qt.MouseButton.LeftButton)
        dialog = await until(lambda: open_dialog(EditDialog), what="the editor")
        dialog.field(0, "amount").setText("not money")
        dialog.accept()
        box = await until(lambda: open_dialog(QMessageBox), what="the problems")
        assert "amount" in box.text() and "Nothing was decided" in box.text()
        box.button(QMessageBox.StandardButton.Ok).click()
        await until(lambda: app.window.review.can_decide, what="buttons back")
        run = await app.engine.get_run(run_id)
        assert run.status is RunStatus.WAITING
        assert (await app.engine.get_token(run.waiting_token_id)).status == "WAITING"
        assert rows(target_path, "select count(*) from refunds") == before


async def test_edit_and_approve_writes_the_edited_value(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, REFUND)
        await review_ready(app, run_id)
        QTest.keyClick(app.window.table, Qt.Key.Key_E)
        dialog = await until(lambda: open_dialog(EditDialog), what="the editor")
        dialog.field(0, "amount").setText("15.00")
        dialog.accept()
        assert await outcome(app, run_id) == "applied"
        assert rows(target_path, "select amount from refunds where invoice_id = 1042")[-1][0] == 15


async def test_expiry_disables_the_buttons(settings: Settings) -> None:
    async with running_console(settings, linger_s=1.0) as app:
        run_id = await waiting_run(app, EMAIL, timeout="2s")
        await review_ready(app, run_id)
        pane = app.window.review
        assert pane.countdown.text().startswith("Expires in")
        await until(lambda: not pane.approve_button.isEnabled(), timeout=6, what="disabled")
        assert not pane.reject_button.isEnabled() and not pane.edit_button.isEnabled()
        assert "expired" in pane.banner.text()
        assert await outcome(app, run_id) == "expired"
        # The row shows the outcome, greyed, for a moment; then it leaves the Waiting view.
        await until(lambda: app.model.is_leaving(run_id), what="the row greyed out")
        assert app.model.get(run_id).state == "expired"  # type: ignore[union-attr]
        await until(lambda: app.model.get(run_id) is None, what="the row to leave Waiting")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hitl_desktop.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_decision_made_through_the_cli_in_another_process_updates_the_window(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, EMAIL)
        await review_ready(app, run_id)
        token_id = app.window.review.view.token.id  # type: ignore[union-attr]
        shown: list[str] = []
        app.window.statusBar().messageChanged.connect(shown.append)
        done = await asyncio.to_thread(
            _cli, "approve", token_id, "--store", app.settings.store_url, "--reviewer", "ana-cli"
        )
        assert done.returncode == 0, done.stderr
        pane = app.window.review
        await until(lambda: not pane.approve_button.isEnabled(), what="buttons disabled")
        # Said at once, in the pane (until the row leaves) and in the status bar; then who the
        # store says decided (the CLI's OS account), the decision's own name beside it.
        assert "This request was approved elsewhere; the buttons are disabled." in shown
        who = f"Decided elsewhere: Approved by {getpass.getuser()} at "
        await until(lambda: any(m.startswith(who) for m in shown), what="who decided")
        assert any(m.endswith("(display name “ana-cli”)") for m in shown if m.startswith(who))
        assert await outcome(app, run_id) == "applied"
        await until(lambda: app.model.get(run_id) is None, what="the row to leave Waiting")
        assert rows(target_path, "select email from customers where id = 23") == [
            ("jonas@schmidt.example",)
        ]


async def test_deciding_a_token_that_no_longer_waits_changes_nothing(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, EMAIL)
        await review_ready(app, run_id)
        stale = app.window.review.view
        assert stale is not None and stale.token is not None
        before = rows(target_path, "select email from customers where id = 23")
        messages: list[str] = []
        app.console.run_stopped_waiting.connect(lambda _run, m: messages.append(m))
        await app.engine.decide(
            stale.token.id,
            Decision(False, "someone").to_json(),
            seen=await seen(app.engine, run_id),
        )
        assert await app.console.decide(stale, Decision(True, "tester")) is False
        first = f"Already decided by {app.engine.actor} at "
        assert any(m.startswith(first) and m.endswith(" — nothing was changed") for m in messages)
        assert await outcome(app, run_id) == "rejected"
        assert rows(target_path, "select email from customers where id = 23") == before


async def test_new_request_dialog_triggers_a_run_that_shows_when_it_waits(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        QTest.keyClick(app.window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
        dialog = await until(lambda: open_dialog(NewRequestDialog), what="the new request dialog")
        dialog.text_edit.setPlainText("Mark invoice 4854 as paid")
        dialog.accept()
        await until(
            lambda: any(r.request == "Mark invoice 4854 as paid" for r in app.model.rows()),
            what="the new run in the table",
        )


async def test_a_request_the_agent_cannot_do_shows_under_failed(settings: Settings) -> None:
    async with running_console(settings) as app:
        run = await app.console.new_request("Make everyone happy")
        await app.engine.wait_for(run.id, [RunStatus.FAILED])
        app.window.set_view(View.FAILED)
        await until(lambda: (r := app.model.get(run.id)) is not None and r.state == "failed")
        app.window.select_run(run.id)
        await until(lambda: "does not understand" in app.window.review.details.toPlainText())
        assert not app.window.review.approve_button.isEnabled()
