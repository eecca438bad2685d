"""What the model wrote is shown as written: real widgets fed a real run whose proposal, request
and outcome hold markup. Each check reads the text the way Qt renders it (`shown`), so a widget
that would take the text for HTML fails it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QGroupBox, QLabel, QMessageBox, QSystemTrayIcon

from hitl_desktop.agent.diff import Diff
from hitl_desktop.agent.review import PROPOSE_STEP, Outcome, Review
from hitl_desktop.engine import Engine, RunContext, RunStatus, task, wait
from hitl_desktop.ui.dialogs import (
    EditDialog,
    NewRequestDialog,
    RejectDialog,
    ask,
    confirm_dialog,
    confirmation,
)
from hitl_desktop.ui.diff_view import DiffView
from hitl_desktop.ui.plain_text import notification_body, notifications_use_markup
from hitl_desktop.ui.records import RunDetails, RunRow, RunView
from hitl_desktop.ui.review_pane import ReviewPane
from hitl_desktop.ui.runs_model import REQUEST, STATUS, RunsModel
from hitl_desktop.ui.tray import TrayNotifier

from .helpers import open_dialog, until

REQUEST_TEXT = "Refund <b>all</b><!-- invoices of customer 23"
SUMMARY = "<b>Fix</b><!--"
RATIONALE = "The customer asked <img src=x> twice & was charged twice"
COLUMN = "<b>note</b>"
VALUE = "<img src=x> <a href='https://example.net'>see</a>"

DELETE = Diff(
    index=0,
    op="delete",
    table="refunds",
    key={"id": 12},
    before={"id": 12, COLUMN: VALUE},
    after=None,
    changed=("id", COLUMN),
    fingerprint="f",
)
UPDATE = Diff(
    index=1,
    op="update",
    table="invoices",
    key={"id": 1042},
    before={"id": 1042, COLUMN: "old"},
    after={"id": 1042, COLUMN: VALUE},
    changed=(COLUMN,),
    fingerprint="f",
)
REVIEW = Review(
    request=REQUEST_TEXT,
    summary=SUMMARY,
    rationale=RATIONALE,
    proposal={"summary": SUMMARY, "changes": [{"op": "delete"}, {"op": "update"}]},
    diffs=(DELETE, UPDATE),
    tables=("invoices", "refunds"),
    target="sqlite:///<i>shop</i>.db",
    proposer="openai:<u>model</u>",
)
OUTCOME: dict[str, Any] = {
    "outcome": "conflict",
    "reviewer": "ana",
    "comment": None,
    "message": "conflict: <b>row moved</b><!-- nothing was written",
    "conflicts": [{"table": "<i>refunds</i>", "key": {"id": 12}, "message": "<s>changed</s>"}],
    "problems": [{"message": "<img src=y> is not a number"}],
}


def shown(text: str, fmt: Qt.TextFormat = Qt.TextFormat.AutoText) -> str:
    """*text* as Qt displays it in a widget with format *fmt* (AutoText: Qt's guess)."""
    rich = fmt == Qt.TextFormat.RichText or (
        fmt == Qt.TextFormat.AutoText
        and QtGui.Qt.mightBeRichText(text)  # Qt's own guess, as QLabel makes it
    )
    if not rich:
        return text
    document = QTextDocument()
    document.setHtml(text)
    return document.toPlainText()


def label_text(label: QLabel) -> str:
    return shown(label.text(), label.textFormat())


@task("plain-text-review")
async def plain_text_review(ctx: RunContext, payload: Any) -> dict[str, Any]:
    await ctx.step(PROPOSE_STEP, REVIEW.to_json)
    await wait.for_token(await wait.create_token(timeout="1h", tags=["refunds"]))
    return OUTCOME


async def run_view(tmp_path: Path, *, decided: bool) -> RunView:
    """A real run of a task that records REVIEW as its proposal and waits for review; with
    *decided*, the token is completed and the run ends with OUTCOME."""
    async with Engine(f"sqlite:///{tmp_path / 'runs.db'}", tasks=[plain_text_review]) as engine:
        run = await engine.trigger("plain-text-review", {"request": REQUEST_TEXT})
        run = await engine.wait_for(run.id)
        assert run.status is RunStatus.WAITING and run.waiting_token_id is not None, run.error
        token_id = run.waiting_token_id
        if decided:
            await engine.complete_token(token_id, {"approved": True})
            run = await engine.wait_for(run.id, [RunStatus.COMPLETED], timeout=10)
        return RunView.build(run, await engine.get_steps(run.id), await engine.get_token(token_id))


async def test_the_review_pane_shows_the_proposal_as_written(tmp_path: Path, qtbot: Any) -> None:
    view = await run_view(tmp_path, decided=False)
    pane = ReviewPane()
    qtbot.addWidget(pane)
    pane.set_view(view)
    assert label_text(pane.title) == REQUEST_TEXT
    details = pane.details.toPlainText()
    for text in (SUMMARY, RATIONALE, "openai:<u>model</u>", "sqlite:///<i>shop</i>.db"):
        assert text in details
    grid = pane.diff.browser.toPlainText()
    assert COLUMN in grid and VALUE in grid and "old" in grid
    pane.stop("Decided elsewhere: <b>applied</b><!-- by someone")
    assert label_text(pane.banner) == "Decided elsewhere: <b>applied</b><!-- by someone"


async def test_the_review_pane_shows_the_outcome_as_written(tmp_path: Path, qtbot: Any) -> None:
    view = await run_view(tmp_path, decided=True)
    assert view.row.outcome is not None
    pane = ReviewPane()
    qtbot.addWidget(pane)
    pane.set_view(view)
    details = pane.details.toPlainText()
    assert "Conflict: <b>row moved</b><!-- nothing was written" in details
    assert "<img src=y> is not a number" in details
    assert "<i>refunds</i>" in details and "<s>changed</s>" in details


async def test_the_delete_confirmation_keeps_its_warning_after_the_summary(qtbot: Any) -> None:
    why = confirmation(REVIEW)
    assert why is not None and "It deletes 1 row (refunds)." in why
    box = confirm_dialog(None, "Approve this change?", f"{REVIEW.summary}\n\n{why}", "Approve")
    answer = asyncio.ensure_future(ask(box))
    opened = await until(lambda: open_dialog(QMessageBox, "confirmDialog"), what="the box")
    try:
        text = shown(opened.text(), opened.textFormat())
        assert "It deletes 1 row (refunds)." in text and "It writes 2 row changes" in text
        assert text.startswith(SUMMARY)
        assert opened.textFormat() == Qt.TextFormat.PlainText
    finally:
        opened.button(QMessageBox.StandardButton.Cancel).click()
    assert await answer == QMessageBox.StandardButton.Cancel


async def test_any_message_box_opened_by_ask_is_plain_text(qtbot: Any) -> None:
    # Built the way a caller builds a one-off box, informative text included.
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "These edits cannot be applied",
        f"• {COLUMN}: not a number\n\nNothing was decided.",
        QMessageBox.StandardButton.Ok,
    )
    box.setObjectName("editProblems")
    box.setInformativeText(f"{SUMMARY} and more")
    answer = asyncio.ensure_future(ask(box))
    opened = await until(lambda: open_dialog(QMessageBox, "editProblems"), what="the box")
    try:
        texts = [label_text(label) for label in opened.findChildren(QLabel) if label.text()]
        assert f"• {COLUMN}: not a number\n\nNothing was decided." in texts
        assert f"{SUMMARY} and more" in texts
    finally:
        opened.button(QMessageBox.StandardButton.Ok).click()
    await answer


def test_the_reject_dialog_quotes_the_summary_as_written(qtbot: Any) -> None:
    dialog = RejectDialog(SUMMARY)
    qtbot.addWidget(dialog)
    texts = [label_text(label) for label in dialog.findChildren(QLabel)]
    assert f"Reject “{SUMMARY}”? Nothing will be written." in texts


def test_the_edit_dialog_names_columns_as_written(qtbot: Any) -> None:
    dialog = EditDialog(REVIEW)
    qtbot.addWidget(dialog)
    texts = [label_text(label) for label in dialog.findChildren(QLabel)]
    assert COLUMN in texts
    assert dialog.field(1, COLUMN).text() == VALUE
    titles = [box.title() for box in dialog.findChildren(QGroupBox)]
    assert "UPDATE invoices id=1042" in titles


def test_the_new_request_dialog_shows_the_target_as_written(qtbot: Any) -> None:
    dialog = NewRequestDialog("sqlite:///<b>shop</b><!--.db", "offline")
    qtbot.addWidget(dialog)
    texts = [label_text(label) for label in dialog.findChildren(QLabel)]
    assert "Target: sqlite:///<b>shop</b><!--.db\nProposer: offline" in texts


def test_the_diff_grid_shows_names_and_values_as_written(qtbot: Any) -> None:
    view = DiffView()
    qtbot.addWidget(view)
    view.set_review(REVIEW)
    grid = view.browser.toPlainText()
    assert grid.count(COLUMN) == 2 and grid.count(VALUE) == 2
    assert label_text(view.title) == "Changes: 2 rows (1 delete, 1 update)"


def test_the_runs_table_tooltips_show_the_request_and_summary_as_written(qapp: Any) -> None:
    model = RunsModel(clock=lambda: 1_800_000_000.0)
    row = RunRow(
        id="run_1",
        task="db-change",
        status=RunStatus.COMPLETED,
        request=REQUEST_TEXT,
        created_at=1_799_999_000.0,
        updated_at=1_799_999_500.0,
        tags=("db-change",),
        token_id=None,
        outcome=Outcome.from_json(OUTCOME),
        error=None,
    )
    model.reset([row])
    model.set_details({"run_1": RunDetails(SUMMARY, ("refunds",), 2, (), None, ())})

    def tip(column: int) -> str:
        return shown(str(model.index(0, column).data(Qt.ItemDataRole.ToolTipRole)))

    assert tip(REQUEST) == f"{REQUEST_TEXT}\nAgent: {SUMMARY}"
    assert tip(STATUS) == OUTCOME["message"]
    assert model.index(0, REQUEST).data() == REQUEST_TEXT  # display roles are plain already


@pytest.mark.parametrize(
    ("platform", "markup"),
    [("linux", True), ("freebsd14", True), ("win32", False), ("darwin", False)],
)
def test_notifications_escape_markup_where_the_server_reads_it(platform: str, markup: bool) -> None:
    assert notifications_use_markup(platform) is markup


def test_a_notification_shows_the_summary_as_written(qapp: Any) -> None:
    icon = QSystemTrayIcon()
    message = f"{SUMMARY} & more awaits approval"
    body = TrayNotifier(icon, markup=True).body(message)
    assert body == "&lt;b&gt;Fix&lt;/b&gt;&lt;!-- &amp; more awaits approval"
    assert shown(body, Qt.TextFormat.RichText) == message  # what a markup server displays
    assert TrayNotifier(icon, markup=False).body(message) == message
    assert notification_body(message, markup=False) == message
