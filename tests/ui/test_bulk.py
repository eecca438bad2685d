"""Deciding several runs at once from the console: one confirmation, each run decided on its own
through the real engine and the real db-change task on real SQLite files, one summary."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hitl_desktop.agent import Decision, Targets, decide
from hitl_desktop.config import Settings
from hitl_desktop.engine import Engine
from hitl_desktop.ui.app import ConsoleApp
from hitl_desktop.ui.bulk import BulkDialog, short_id
from hitl_desktop.ui.records import View

from .helpers import open_dialog, rows, running_console, until
from .test_main_window import EMAIL, REFUND, outcome, review_ready, waiting_run

PLAN = "Move customer 17 to the annual plan"
PAID = "Mark invoice 4854 as paid"


async def confirmation(app: ConsoleApp) -> BulkDialog:
    dialog: BulkDialog = await until(
        lambda: open_dialog(BulkDialog, "bulkConfirmDialog"), what="the bulk confirmation"
    )
    return dialog


async def summary(app: ConsoleApp) -> BulkDialog:
    dialog: BulkDialog = await until(
        lambda: open_dialog(BulkDialog, "bulkResultDialog"), what="the summary"
    )
    return dialog


async def test_approving_three_runs_confirms_once_and_decides_each_on_its_own(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        left = await waiting_run(app, PAID)  # oldest: the last row, not selected
        refund = await waiting_run(app, REFUND)
        email = await waiting_run(app, EMAIL)
        plan = await waiting_run(app, PLAN)
        window = app.window
        await review_ready(app, plan)  # newest first: the plan is on top
        QTest.keyClick(window.table, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
        QTest.keyClick(window.table, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
        assert window.selected_runs() == [plan, email, refund]
        pane = window.review
        assert pane.view is not None and pane.view.run.id == plan  # the pane keeps one run
        assert not pane.edit_button.isEnabled() and not window.edit_action.isEnabled()
        assert "select only one" in pane.edit_button.toolTip()
        assert pane.approve_button.isEnabled() and pane.approve_button.text() == "Approve 3 runs…"
        shown: list[str] = []
        window.statusBar().messageChanged.connect(shown.append)

        QTest.keyClick(window.table, Qt.Key.Key_A)
        dialog = await confirmation(app)
        assert dialog.heading.text() == "Approve 3 runs?"
        assert dialog.ok_button.text() == "Approve 3 runs"
        listing = dialog.listing.toPlainText()
        for run_id, what in ((plan, "subscriptions"), (email, "customers"), (refund, "refunds")):
            line = next(x for x in listing.splitlines() if short_id(run_id) in x)
            assert what in line
        assert "Skipped" not in listing and short_id(left) not in listing

        # Before this reviewer confirms, ana rejects the email change from another machine.
        async with Engine(settings.store_url, actor="ana", execute=False) as other:
            token = (await other.get_run(email)).waiting_token_id
            assert token is not None
            targets = Targets(settings.target_profiles())
            await decide(other, targets, token, Decision(False, "Ana Lima", "duplicate"))
        dialog.ok_button.click()

        result = await summary(app)
        # Still deciding while the summary is open: the buttons wait for it.
        assert not pane.approve_button.isEnabled() and not window.approve_action.isEnabled()
        assert result.heading.text() == "Approved 2 of 3 runs; 1 did not go through."
        went, failed = result.listing.toPlainText().split("Did not go through")
        assert short_id(plan) in went and short_id(refund) in went and short_id(email) not in went
        assert short_id(email) in failed and "Already decided by ana at " in failed
        assert "Approving 1 of 3…" in shown and "Approving 3 of 3…" in shown
        result.accept()

        assert await outcome(app, plan) == "applied"
        assert await outcome(app, refund) == "applied"
        assert await outcome(app, email) == "rejected"
        assert rows(target_path, "select email from customers where id = 23") != [
            ("jonas@schmidt.example",)
        ]
        # Each decision is checked and audited by itself: one Decision entry per run, by whom
        # it was made.
        for run_id, actor in ((plan, app.engine.actor), (refund, app.engine.actor)):
            entries = await app.engine.audit_entries(run_id=run_id)
            decisions = [e for e in entries if e.kind == "Decision"]
            assert [e.actor for e in decisions] == [actor]
            assert decisions[0].data is not None and '"tester"' in decisions[0].data
        entries = await app.engine.audit_entries(run_id=email)
        assert [e.actor for e in entries if e.kind == "Decision"] == ["ana"]

        # Afterwards: the next waiting run alone, and the table has the focus.
        await until(lambda: window.selected_runs() == [left], what="the next waiting run")
        assert window.table.hasFocus()
        await until(lambda: pane.approve_button.isEnabled(), what="the buttons back")
        assert pane.edit_button.isEnabled() and window.edit_action.isEnabled()
        assert pane.approve_button.text() == "Approve"


async def test_rejecting_in_bulk_asks_one_comment_and_skips_a_run_that_does_not_wait(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        done = await waiting_run(app, PLAN)
        await review_ready(app, done)
        assert await app.console.decide(app.window.review.view, Decision(True, "tester"))  # type: ignore[arg-type]
        assert await outcome(app, done) == "applied"
        email = await waiting_run(app, EMAIL)
        refund = await waiting_run(app, REFUND)
        window = app.window
        window.set_view(View.ALL)
        await until(
            lambda: all(window.proxy.row_of(r) >= 0 for r in (done, email, refund)),
            what="the three runs in All",
        )
        await until(lambda: app.model.get(done).state == "applied", what="applied")  # type: ignore[union-attr]
        window.select_runs([done, email, refund])
        assert sorted(window.selected_runs()) == sorted([done, email, refund])
        before = rows(target_path, "select count(*) from refunds")

        QTest.mouseClick(window.review.reject_button, Qt.MouseButton.LeftButton)
        dialog = await confirmation(app)
        assert dialog.heading.text().startswith("Reject 2 runs?")
        assert dialog.ok_button.text() == "Reject 2 runs"
        rejected, skipped = dialog.listing.toPlainText().split("Skipped (each line says why")
        assert short_id(email) in rejected and short_id(refund) in rejected
        assert short_id(done) in skipped and "applied" in skipped
        assert dialog.comment_edit is not None
        dialog.comment_edit.setPlainText("not this <b>week</b>")
        dialog.accept()

        result = await summary(app)
        assert result.heading.text() == "Rejected 2 runs."
        assert short_id(done) in result.listing.toPlainText().split("Skipped")[1]
        result.accept()
        for run_id in (email, refund):
            assert await outcome(app, run_id) == "rejected"
            run = await app.engine.get_run(run_id)
            assert run.output["comment"] == "not this <b>week</b>"
            assert run.output["reviewer"] == "tester"
        assert rows(target_path, "select count(*) from refunds") == before
        assert await outcome(app, done) == "applied"


async def test_cancelling_the_bulk_confirmation_changes_nothing(settings: Settings) -> None:
    async with running_console(settings) as app:
        first = await waiting_run(app, PLAN)
        second = await waiting_run(app, EMAIL)
        window = app.window
        window.select_runs([first, second])
        QTest.keyClick(window.table, Qt.Key.Key_R)
        dialog = await confirmation(app)
        dialog.reject()  # cancelled: nothing is decided
        await until(lambda: window.review.reject_button.isEnabled(), what="buttons back")
        for run_id in (first, second):
            assert (await app.engine.get_run(run_id)).waiting_token_id is not None
