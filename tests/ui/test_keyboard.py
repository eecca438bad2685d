"""Reviewing with the keyboard only: real windows on a real store and target, each key sent to
whichever widget has the focus (the window's shortcuts apply as they do for a real key), never a
mouse event."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu, QWidget

from hitl_desktop.agent.db_change import request_change
from hitl_desktop.config import Settings
from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.app import ConsoleApp
from hitl_desktop.ui.dialogs import RejectDialog
from hitl_desktop.ui.shortcuts import ShortcutsDialog, plain_name

from .helpers import open_dialog, running_console, until

LAUNCHES = 5
EMAILS = [f"Change the email of customer {n} to reviewer{n}@example.com" for n in range(20, 27)]


def key(app: ConsoleApp, code: Qt.Key, modifier: Qt.KeyboardModifier | None = None) -> None:
    """Press *code* as a keyboard would: on the focus widget, with the shortcuts applied (on
    the window itself when nothing has the focus, where Down does nothing)."""
    # Not QTest.keyClick on the QWindow: it processes events inside the running task, which
    # the qasync loop then loses (see conftest).
    target = QApplication.focusWidget() or app.window
    QTest.keyClick(target, code, modifier or Qt.KeyboardModifier.NoModifier)


def focused() -> QWidget | None:
    return QApplication.focusWidget()


async def request(app: ConsoleApp, texts: list[str]) -> list[str]:
    """Request each text; the run ids once all of them wait in the table."""
    ids = []
    for text in texts:
        run = await request_change(app.engine, app.console.change_request(text))
        ids.append(run.id)
    await until(
        lambda: all((r := app.model.get(i)) is not None and r.waiting for i in ids),
        what="the requests waiting in the table",
    )
    return ids


async def pane_ready(app: ConsoleApp, run_id: str) -> None:
    pane = app.window.review
    await until(
        lambda: pane.view is not None and pane.view.run.id == run_id and pane.can_decide,
        what=f"the review pane showing {run_id}",
    )


async def status_of(app: ConsoleApp, run_id: str) -> RunStatus:
    return (await app.engine.get_run(run_id)).status


async def test_launch_down_a_approves_the_second_run_on_every_launch(settings: Settings) -> None:
    async with running_console(settings) as app:
        await request(app, EMAILS[: LAUNCHES + 1])
    for launch in range(LAUNCHES):
        async with running_console(settings) as app:
            window = app.window
            await until(lambda: window.proxy.rowCount() >= 2, what="two rows")  # noqa: B023
            first, second = window.proxy.run_id(0), window.proxy.run_id(1)
            assert first is not None and second is not None
            # As soon as the reviewer sees rows: Down, then A once the pane shows that run.
            key(app, Qt.Key.Key_Down)
            await until(lambda: window.selected_run() == second, what=f"Down, launch {launch}")  # noqa: B023
            await pane_ready(app, second)
            key(app, Qt.Key.Key_A)
            finished = await app.engine.wait_for(second, [RunStatus.COMPLETED], timeout=10)
            assert finished.output["outcome"] == "applied", f"launch {launch}"
            assert await status_of(app, first) is RunStatus.WAITING, f"launch {launch}"
            await until(lambda: focused() is window.table, what="the table's focus again")  # noqa: B023


async def test_a_key_right_after_down_never_decides_the_run_left_behind(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        await request(app, EMAILS[:2])
        window = app.window
        top, below = window.proxy.run_id(0), window.proxy.run_id(1)
        assert top is not None and below is not None
        shown: list[str] = []
        window.statusBar().messageChanged.connect(shown.append)
        window.select_run(top)
        await pane_ready(app, top)
        key(app, Qt.Key.Key_Down)
        key(app, Qt.Key.Key_A)  # the pane still shows the top run while it reads the one below
        await pane_ready(app, below)
        assert "The selected run is still loading; nothing was decided." in shown
        assert await status_of(app, top) is RunStatus.WAITING
        key(app, Qt.Key.Key_A)
        await app.engine.wait_for(below, [RunStatus.COMPLETED], timeout=10)
        assert await status_of(app, top) is RunStatus.WAITING


async def test_the_table_has_the_focus_again_after_every_decision_and_dialog(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        window = app.window
        await request(app, EMAILS[:3])
        ids = [str(window.proxy.run_id(row)) for row in (2, 1, 0)]  # the top row last
        window.select_run(ids[-1])
        await pane_ready(app, ids[-1])
        assert focused() is window.table
        key(app, Qt.Key.Key_R)
        dialog = await until(lambda: open_dialog(RejectDialog), what="the reject dialog")
        dialog.reject()  # changed their mind: Esc
        await until(lambda: focused() is window.table, what="focus after a cancelled dialog")
        key(app, Qt.Key.Key_R)
        dialog = await until(lambda: open_dialog(RejectDialog), what="the reject dialog")
        dialog.reason_edit.setPlainText("not today")
        dialog.accept()
        await app.engine.wait_for(ids[-1], [RunStatus.COMPLETED], timeout=10)
        await until(lambda: focused() is window.table, what="focus after a rejection")
        await pane_ready(app, ids[-2])
        window.review.approve_button.setFocus()  # Tab-ed to the button, pressed Space
        QTest.keyClick(window.review.approve_button, Qt.Key.Key_Space)
        await app.engine.wait_for(ids[-2], [RunStatus.COMPLETED], timeout=10)
        await until(lambda: focused() is window.table, what="focus after the button")


async def test_tab_goes_filter_table_review_pane_buttons(settings: Settings) -> None:
    async with running_console(settings) as app:
        window, pane = app.window, app.window.review
        [run_id] = await request(app, EMAILS[:1])
        await pane_ready(app, run_id)
        key(app, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        assert focused() is window.filter
        expected = [
            window.table,
            pane.details,
            pane.diff.browser,
            pane.diff.raw_toggle,
            pane.relied_on.tree,
            pane.reject_button,
            pane.edit_button,
            pane.approve_button,
            window.tabs,
            window.new_button,
            window.settings_button,
            window.filter,
        ]
        seen = []
        for _ in expected:
            key(app, Qt.Key.Key_Tab)
            seen.append(focused())
        assert [w.objectName() or type(w).__name__ for w in seen if w is not None] == [
            w.objectName() or type(w).__name__ for w in expected
        ]
        assert seen == expected
        # Shift+Tab walks back; with the raw JSON shown it takes the diff grid's place.
        key(app, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
        assert pane.diff.showing_raw
        window.focus_table()
        key(app, Qt.Key.Key_Tab)
        key(app, Qt.Key.Key_Tab)
        assert focused() is pane.diff.raw
        key(app, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
        assert focused() is pane.details


async def test_esc_returns_to_the_table_from_anywhere_but_leaves_dialogs_their_own(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        window, pane = app.window, app.window.review
        [run_id] = await request(app, EMAILS[:1])
        await pane_ready(app, run_id)
        key(app, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
        pane.diff.raw.setFocus()
        assert focused() is pane.diff.raw
        key(app, Qt.Key.Key_Escape)
        assert focused() is window.table
        for widget in (window.filter, pane.details, pane.reject_button, window.tabs):
            widget.setFocus()
            assert focused() is widget
            key(app, Qt.Key.Key_Escape)
            assert focused() is window.table, widget.objectName()
        # A dialog's Esc closes the dialog, as ever.
        key(app, Qt.Key.Key_R)
        dialog = await until(lambda: open_dialog(RejectDialog), what="the reject dialog")
        await until(lambda: dialog.isAncestorOf(focused()), what="the dialog's focus")
        key(app, Qt.Key.Key_Escape)
        await until(lambda: open_dialog(RejectDialog) is None, what="Esc closing the dialog")
        assert await status_of(app, run_id) is RunStatus.WAITING
        await until(lambda: focused() is window.table, what="focus after the dialog")


async def test_question_mark_lists_every_shortcut_the_window_defines(settings: Settings) -> None:
    async with running_console(settings) as app:
        window = app.window
        key(app, Qt.Key.Key_Question)
        dialog = await until(lambda: open_dialog(ShortcutsDialog), what="the shortcuts dialog")
        listed = dict(dialog.shortcuts())
        keys = {k for ks in listed.values() for k in ks.split(", ")}
        assert {"A", "R", "E", "Ctrl+7", "Ctrl+U", "Ctrl+F", "Ctrl+Q", "Esc", "?"} <= keys
        assert listed["Approve"] == "A, Ctrl+Return, Ctrl+Enter"
        assert listed["Edit & approve…"] == "E"
        # Every action with a key is listed, by its name, with its keys.
        for action in window.findChildren(QAction):
            if any(not k.isEmpty() for k in action.shortcuts()):
                assert plain_name(action.text()) in listed, action.text()
        dialog.reject()
        await until(lambda: open_dialog(ShortcutsDialog) is None, what="the dialog closed")
        # Read from the actions each time it opens: a new key shows without editing a list.
        extra = QAction("&Something new", window)
        extra.setShortcut("Ctrl+Shift+Y")
        window.addAction(extra)
        help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
        assert isinstance(help_menu, QMenu)
        [shortcuts_item] = [a for a in help_menu.actions() if a.text() == "&Keyboard shortcuts"]
        shortcuts_item.trigger()
        dialog = await until(lambda: open_dialog(ShortcutsDialog), what="the dialog again")
        assert ("Something new", "Ctrl+Shift+Y") in dialog.shortcuts()
        dialog.reject()


async def test_every_menu_and_command_has_a_mnemonic(settings: Settings) -> None:
    async with running_console(settings) as app:
        bar = app.window.menuBar()
        titles = [a.text() for a in bar.actions()]
        assert titles == ["&File", "&View", "&Run", "&Help"]
        for top in bar.actions():
            menu = top.menu()
            assert isinstance(menu, QMenu)
            letters = []
            for action in menu.actions():
                if action.isSeparator():
                    continue
                marks = action.text().replace("&&", "").count("&")
                assert marks == 1, f"{action.text()!r} in {top.text()}"
                letters.append(action.text().replace("&&", "").split("&")[1][0].lower())
            assert len(letters) == len(set(letters)), f"{top.text()}: {letters}"
        # The buttons beside the filter are in the File menu too, with their keys.
        assert app.window.settings_action.shortcut().toString() == "Ctrl+,"


def _accessible(widget: QWidget) -> tuple[str, str]:
    iface = QAccessible.queryAccessibleInterface(widget)
    assert iface is not None and iface.isValid()
    return iface.text(QAccessible.Text.Name), iface.text(QAccessible.Text.Description)


async def test_accessible_names_and_descriptions(settings: Settings) -> None:
    async with running_console(settings) as app:
        window, pane = app.window, app.window.review
        [run_id] = await request(app, EMAILS[:1])
        await pane_ready(app, run_id)
        expected = {
            window.table: "Runs",
            window.filter: "Filter runs",
            pane.diff.browser: "Changes",
            pane.diff.raw: "Raw proposal JSON",
            pane.approve_button: "Approve",
            pane.reject_button: "Reject",
            pane.edit_button: "Edit and approve",
        }
        for widget, name in expected.items():
            found, description = _accessible(widget)
            assert found == name, widget.objectName()
            assert len(description) > 20, widget.objectName()
        # The decision buttons' keys are in their descriptions.
        assert "(A)" in _accessible(pane.approve_button)[1]
        assert "(R)" in _accessible(pane.reject_button)[1]
        # The table is reachable in the window's accessibility tree.
        root = QAccessible.queryAccessibleInterface(window)
        assert root is not None
        names = set()
        todo = [root]
        for _ in range(2000):
            if not todo:
                break
            node = todo.pop()
            names.add(node.text(QAccessible.Text.Name))
            todo += [c for i in range(node.childCount()) if (c := node.child(i)) is not None]
        assert {"Runs", "Changes", "Approve", "Reject"} <= names
