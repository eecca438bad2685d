"""What a proposal relied on, in the review pane: the rows the proposer read (the invoice's amount
and status, the refunds made on it so far) listed under the diff, and in the Raw JSON view.

Real widgets, the real engine with the db-change task and the offline proposer, real SQLite files.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hitl_desktop.agent import Read, Review
from hitl_desktop.config import Settings
from hitl_desktop.ui.relied_on import ReliedOnView

from .helpers import rows, running_console
from .test_main_window import outcome, review_ready, waiting_run

# Invoice 74 of the demo: $290.00, paid, refund 8 of $222.79 succeeded on it.
FIRST = "Refund $20 on invoice 74"
SECOND = "Refund $10 on invoice 74"


async def test_the_pane_lists_the_invoice_and_the_refunds_made_on_it_so_far(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        pane = app.window.review
        first = await waiting_run(app, FIRST)
        await review_ready(app, first)
        assert pane.relied_on.text() == (
            "invoices id=74\n"
            "    number INV-000074 · status paid · amount 290.00\n"
            "refunds where invoice_id=74: 1 row\n"
            "    id 8 · amount 222.79 · reason fraudulent · status succeeded"
        )
        QTest.mouseClick(pane.approve_button, Qt.MouseButton.LeftButton)
        assert await outcome(app, first) == "applied"
        (new,) = rows(target_path, "select id from refunds where invoice_id = 74 and id != 8")

        second = await waiting_run(app, SECOND)
        await review_ready(app, second)
        # The refund the first run wrote is one the second proposal relied on.
        assert pane.relied_on.title.text() == "Relied on: 2 reads"
        assert pane.relied_on.text() == (
            "invoices id=74\n"
            "    number INV-000074 · status paid · amount 290.00\n"
            "refunds where invoice_id=74: 2 rows\n"
            "    id 8 · amount 222.79 · reason fraudulent · status succeeded\n"
            f"    id {new[0]} · amount 20.00 · reason requested_by_customer · status pending"
        )
        tree = pane.relied_on.tree
        assert tree.isVisible() and tree.topLevelItemCount() == 2
        assert pane.relied_on.isVisibleTo(pane) and pane.diff.isVisibleTo(pane)

        pane.diff.raw_toggle.click()
        raw = json.loads(pane.diff.raw.toPlainText())
        assert raw["summary"] == "Refund $10.00 on invoice INV-000074"
        invoice, refunds, _parent = raw["relied_on"]
        assert (invoice["table"], invoice["key"]) == ("invoices", {"id": 74})
        assert invoice["rows"][0]["amount"] == "290.00"
        assert [r["amount"] for r in refunds["rows"]] == ["222.79", "20.00"]
        pane.diff.raw_toggle.click()


async def test_rows_from_the_target_are_shown_as_plain_text(
    settings: Settings, target_path: Path
) -> None:
    with sqlite3.connect(target_path) as conn:
        conn.execute("update customers set name = '<b>Jonas</b><!--' where id = 23")
    async with running_console(settings) as app:
        run_id = await waiting_run(app, "Change the email of customer 23 to jonas@schmidt.example")
        await review_ready(app, run_id)
        view = app.window.review.relied_on
        assert "    name <b>Jonas</b><!-- · email " in view.text()
        head = view.tree.topLevelItem(0)
        assert head is not None and head.child(0) is not None
        assert head.child(0).text(0).startswith("name <b>Jonas</b><!--")  # type: ignore[union-attr]


def listed(n: int) -> Review:
    found = [
        {"id": i, "invoice_id": 5, "amount": f"{i}.00", "note": "x" * 60, "status": "succeeded"}
        for i in range(1, n + 1)
    ]
    reads = (Read.of("find_rows", "refunds", {"invoice_id": 5}, found, 50),)
    return Review("r", "s", "Refund $1.00", {}, (), ("refunds",), "t", "offline", reads)


def test_a_read_of_many_rows_shows_its_count_and_the_first_few(qapp: object) -> None:
    view = ReliedOnView()
    view.set_review(listed(7))
    assert view.text().splitlines() == [
        "refunds where invoice_id=5: 7 rows",
        "    id 1 · amount 1.00 · note " + "x" * 39 + "… · status succeeded",
        "    id 2 · amount 2.00 · note " + "x" * 39 + "… · status succeeded",
        "    id 3 · amount 3.00 · note " + "x" * 39 + "… · status succeeded",
        "    … and 4 more",
    ]
    view.set_review(listed(0))
    assert view.text() == "refunds where invoice_id=5: no rows"
    view.set_review(Review("r", "s", "r", {}, (), (), "t", "offline"))
    assert (view.title.text(), view.text()) == ("Relied on", "No rows read")
    view.set_review(None)
    assert view.text() == "" and view.tree.topLevelItemCount() == 0
