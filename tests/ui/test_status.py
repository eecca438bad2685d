"""The status bar: a decision's result is shown whole, the paths give way (elided in the middle,
whole in their tooltips). Real windows on a real store whose path is long."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hitl_desktop.agent.db_change import request_change
from hitl_desktop.config import Settings, sqlite_url
from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.status import MessageLabel, PathLabel

from .helpers import running_console, until

REQUEST = "Change the email of customer 23 to jonas@schmidt.example"


def shows_whole(label: MessageLabel) -> bool:
    """The label's text fits its rectangle (wrapped if need be) and nothing is elided."""
    needed = label.text_height(label.width())
    return label.isVisible() and label.width() > 0 and needed <= label.height()


def elided(label: PathLabel) -> bool:
    return label.text() != label.full_text and "…" in label.text()


async def test_a_decision_is_shown_whole_and_the_long_store_path_elided(
    settings: Settings, tmp_path: Path
) -> None:
    deep = tmp_path.joinpath(*[f"a-rather-long-folder-name-{i}" for i in range(6)])
    deep.mkdir(parents=True)
    store = deep / "runs.db"
    settings = replace(settings, store_url=sqlite_url(store))
    async with running_console(settings) as app:
        window, status = app.window, app.window.status
        window.resize(760, 560)
        run = await request_change(app.engine, app.console.change_request(REQUEST))
        await until(lambda: (r := app.model.get(run.id)) is not None and r.waiting, what="waiting")
        window.select_run(run.id)
        pane = window.review
        await until(lambda: pane.view is not None and pane.can_decide, what="the review")
        summary = pane.view.review.summary  # type: ignore[union-attr]
        QTest.keyClick(window.table, Qt.Key.Key_A)
        await app.engine.wait_for(run.id, [RunStatus.COMPLETED], timeout=10)
        said = f"Approved: {summary}"
        await until(lambda: status.currentMessage() == said, what="the decision's message")
        await until(lambda: shows_whole(status.message_label), what="the message laid out")
        assert status.message_label.text() == said
        # The store's path gives way, in the middle: its start and its file name stay.
        store_label = window.store_label
        assert elided(store_label), store_label.text()
        assert store_label.text().startswith("Store: ") and store_label.text().endswith("/runs.db")
        assert str(store) in store_label.toolTip()
        assert store_label.accessibleName() == store_label.full_text
        assert str(store) in store_label.full_text


async def test_a_message_wider_than_the_window_wraps_and_paths_come_back_whole(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        window, status = app.window, app.window.status
        window.resize(640, 480)
        long = "Approved: " + " ".join(f"INV-{n:06d} marked as paid" for n in range(12))
        window.show_message(long)
        one_line = status.message_label.fontMetrics().height()
        await until(lambda: shows_whole(status.message_label), what="the long message laid out")
        assert status.currentMessage() == long
        assert status.message_label.height() > one_line  # wrapped, not cut
        assert status.message_label.toolTip() != ""
        # A short message in a wider window: the paths get the room back, one line high.
        narrow = len(window.store_label.text()) + len(window.target_label.text())
        window.resize(1280, 700)
        window.show_message("Approved: Mark invoice INV-004854 as paid")
        await until(
            lambda: len(window.store_label.text()) + len(window.target_label.text()) > narrow,
            what="the paths wider",
        )
        await until(lambda: status.message_label.height() == one_line, what="one line again")
        assert shows_whole(status.message_label)
        # Transient: it goes after its time, or at once when cleared.
        status.clearMessage()
        assert status.currentMessage() == ""


def test_a_path_label_elides_in_the_middle_and_keeps_the_whole_path(qtbot: object) -> None:
    label = PathLabel("storeLabel")
    path = "/srv/hitl/" + "/".join(["deeply-nested-folder"] * 8) + "/runs.db"
    label.set_path("Store: ", path)
    label.resize(label.min_width() * 2, 20)
    label.show()
    assert elided(label)
    assert label.text().startswith("Store: /") and label.text().endswith("runs.db")
    assert path in label.toolTip()
    label.resize(label.full_width() + 10, 20)
    assert label.text() == f"Store: {path}"
    label.deleteLater()
