"""A change set in the console: one row, its parts listed in the review pane, each decided from
the keyboard on its own token; real windows, a real store and a real target (SQLite files)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from hitl_desktop.agent import DEMO_CHANGE_SET, Decision, decide, read_change_set
from hitl_desktop.agent.db_change import request_change
from hitl_desktop.config import Settings
from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.app import ConsoleApp
from hitl_desktop.ui.change_set_view import NAME, RULE, STATUS
from hitl_desktop.ui.dialogs import EditDialog, RejectDialog
from hitl_desktop.ui.runs_model import REQUEST
from tests.agent.helpers import BOTH, DEMO_SET_PARTS, NOTHING, demo_set_written

from .helpers import open_dialog, rows, running_console, until
from .test_keyboard import focused, key

REFUND, PAID = DEMO_SET_PARTS
EMAIL = "Change the email of customer 20 to reviewer20@example.com"
THREE = f"{REFUND}; mark invoice 4854 as paid and change the email of customer 23 to j@s.example"
written = demo_set_written


async def waiting_set(app: ConsoleApp, text: str = DEMO_CHANGE_SET) -> str:
    """Request *text*; its run id once its pane shows its first part, ready to decide."""
    run = await request_change(app.engine, app.console.change_request(text))
    await until(lambda: (r := app.model.get(run.id)) is not None and r.waiting, what="its row")
    app.window.select_run(run.id)
    await part_shown(app, run.id, 1)
    return run.id


async def part_shown(app: ConsoleApp, run_id: str, number: int) -> None:
    pane = app.window.review
    await until(
        lambda: (
            pane.view is not None
            and pane.view.run.id == run_id
            and pane.view.part is not None
            and pane.view.part.number == number
            and pane.can_decide
        ),
        what=f"part {number} in the review pane",
    )


def row_text(app: ConsoleApp, run_id: str) -> str:
    index = app.model.index(app.model.row_of(run_id), REQUEST)
    return str(app.model.data(index))


def listed(app: ConsoleApp) -> list[tuple[str, str, str]]:
    """The parts list: (name, status, rule) per part."""
    parts = app.window.review.parts.list
    return [
        (item.text(NAME), item.text(STATUS), item.text(RULE))
        for item in (parts.topLevelItem(i) for i in range(parts.topLevelItemCount()))
        if item is not None
    ]


async def test_a_change_set_is_one_row_and_the_pane_lists_its_parts(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_set(app, THREE)
        assert [r.id for r in app.model.rows()] == [run_id]  # one run, one row
        await until(lambda: row_text(app, run_id).startswith("set: 0 of 3 approved — Refund"))
        pane = app.window.review
        assert pane.parts.isVisible()
        assert pane.parts.heading.text() == "Change set of 3 parts (set: 0 of 3 approved)"
        names = [REFUND, PAID, "Change the email of customer 23 to j@s.example"]
        assert listed(app) == [(name, "waiting", "no rule: one approval") for name in names]
        # The pane shows the first part: its diff and its token, not the whole set's.
        assert pane.view is not None and pane.view.review is not None
        assert [d.table for d in pane.view.review.diffs] == ["refunds"]
        assert pane.diff.title.text() == "Changes: 1 row (1 insert)"
        assert pane.view.token is not None and pane.view.part is not None
        assert pane.view.token.id == pane.view.part.token_id
        assert pane.view.token.id != app.model.get(run_id).token_id  # not the group's
        assert "Part 1 of 3: Refund $20 on invoice 1042" in pane.details.toPlainText()
        pane.parts.choose(2)
        await part_shown(app, run_id, 2)
        assert pane.diff.title.text() == "Changes: 1 row (1 update)"
        assert "invoices" in pane.diff.browser.toPlainText()
        assert written(target_path) == NOTHING


async def test_approving_part_one_with_the_keyboard_leaves_the_set_waiting(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        window, pane = app.window, app.window.review
        run_id = await waiting_set(app)
        # The parts list is in the tab order, right after the table: Tab, Down, Up picks parts.
        assert focused() is window.table
        key(app, Qt.Key.Key_Tab)
        assert focused() is pane.parts.list
        key(app, Qt.Key.Key_Down)
        await part_shown(app, run_id, 2)
        key(app, Qt.Key.Key_Up)
        await part_shown(app, run_id, 1)
        key(app, Qt.Key.Key_A)
        # The pane moves on to the part still waiting; the run waits; nothing is written.
        await part_shown(app, run_id, 2)
        found = await read_change_set(app.engine, run_id)
        assert found is not None
        assert [p.status for p in found.parts] == ["approved", "waiting"]
        assert (await app.engine.get_run(run_id)).status is RunStatus.WAITING
        await until(lambda: row_text(app, run_id).startswith("set: 1 of 2 approved — "))
        [(_, first, _), (_, second, _)] = listed(app)
        assert first == f"approved by {found.parts[0].decided_by[0]}" and second == "waiting"
        assert "set: 1 of 2 approved" in pane.parts.heading.text()
        assert app.model.get(run_id) is not None and focused() is window.table
        assert written(target_path) == NOTHING


async def test_each_decision_moves_to_the_next_part_then_to_the_next_run(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        window = app.window
        other = await request_change(app.engine, app.console.change_request(EMAIL))
        await until(lambda: (r := app.model.get(other.id)) is not None and r.waiting)
        run_id = await waiting_set(app, THREE)
        for number in (2, 3):
            key(app, Qt.Key.Key_A)
            await part_shown(app, run_id, number)
            assert window.selected_run() == run_id
        assert written(target_path) == NOTHING
        key(app, Qt.Key.Key_A)
        run = await app.engine.wait_for(run_id, [RunStatus.COMPLETED], timeout=10)
        assert run.output["outcome"] == "applied"
        await until(lambda: window.selected_run() == other.id, what="the next waiting run")
        assert written(target_path) == BOTH
        assert rows(target_path, "select email from customers where id = 23") == [("j@s.example",)]


async def test_rejecting_part_two_rejects_the_set_and_writes_nothing(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_set(app)
        key(app, Qt.Key.Key_A)
        await part_shown(app, run_id, 2)
        key(app, Qt.Key.Key_R)
        dialog = await until(lambda: open_dialog(RejectDialog), what="the reject dialog")
        said = [label.text() for label in dialog.findChildren(QLabel)]
        assert any("Part 2 of 2: Mark invoice 4854 as paid" in text for text in said), said
        dialog.reason_edit.setPlainText("not this one")
        dialog.accept()
        run = await app.engine.wait_for(run_id, [RunStatus.COMPLETED], timeout=10)
        assert run.output["outcome"] == "rejected"
        assert [p["outcome"]["outcome"] for p in run.output["parts"]] == ["rejected", "rejected"]
        await until(lambda: app.model.get(run_id) is None, what="the row leaving Waiting")
        assert written(target_path) == NOTHING


async def test_approving_every_part_writes_them_all_once(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_set(app)
        key(app, Qt.Key.Key_A)
        await part_shown(app, run_id, 2)
        assert written(target_path) == NOTHING
        key(app, Qt.Key.Key_A)
        run = await app.engine.wait_for(run_id, [RunStatus.COMPLETED], timeout=10)
        assert run.output["outcome"] == "applied"
        await until(lambda: app.model.get(run_id) is None, what="the row leaving Waiting")
        assert written(target_path) == BOTH
        assert rows(
            target_path, "select count(*) from hitl_applied_writes where run_id = ?", run_id
        ) == [(1,)]


async def test_parts_decided_elsewhere_update_the_row_and_the_pane(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        pane = app.window.review
        run_id = await waiting_set(app, THREE)
        await until(lambda: row_text(app, run_id).startswith("set: 0 of 3 approved"))
        found = await read_change_set(app.engine, run_id)
        assert found is not None
        tokens = [part.token_id for part in found.parts]
        assert None not in tokens
        # Another reviewer approves the part shown: the pane moves on to the next that waits.
        await decide(app.engine, app.targets, str(tokens[0]), Decision(True, "bob"))
        await until(lambda: row_text(app, run_id).startswith("set: 1 of 3 approved"), what="mark")
        await part_shown(app, run_id, 2)
        assert listed(app)[0][1].startswith("approved by")
        # A part the reviewer picked stays shown once decided elsewhere, and cannot be decided.
        pane.parts.choose(3)
        await part_shown(app, run_id, 3)
        await decide(app.engine, app.targets, str(tokens[2]), Decision(False, "bob", "no"))
        await until(lambda: listed(app)[2][1].startswith("rejected by"), what="part 3's status")
        await until(lambda: row_text(app, run_id).startswith("set of 3: 1 approved, 1 waiting"))
        view = pane.view
        assert view is not None and view.part is not None and view.part.number == 3
        assert not pane.can_decide and not pane.approve_button.isEnabled()
        assert "rejected by" in pane.details.toPlainText()
        assert "Part 3 was rejected: nothing of this change set will be written" in (
            pane.details.toPlainText()
        )
        assert (await app.engine.get_run(run_id)).status is RunStatus.WAITING
        assert written(target_path) == NOTHING


async def test_a_part_is_edited_and_approved_on_its_own_changes(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        pane = app.window.review
        run_id = await waiting_set(app)
        assert pane.edit_button.isEnabled()
        key(app, Qt.Key.Key_E)
        dialog = await until(lambda: open_dialog(EditDialog), what="the editor")
        assert [d.table for d in dialog.review.diffs] == ["refunds"]  # part 1's changes only
        dialog.field(0, "amount").setText("15.00")
        dialog.accept()
        await part_shown(app, run_id, 2)
        assert written(target_path) == NOTHING
        key(app, Qt.Key.Key_A)
        run = await app.engine.wait_for(run_id, [RunStatus.COMPLETED], timeout=10)
        assert run.output["outcome"] == "applied"
        assert written(target_path) == {"refunds": [(15, "pending")], "invoice": [("paid",)]}
