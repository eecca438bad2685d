"""A run's Audit view: its entries from the real store, oldest first, in words and plain text, and
whether the store's whole chain verifies."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hitl_desktop.agent import Decision
from hitl_desktop.config import Settings
from hitl_desktop.ui.app import ConsoleApp
from hitl_desktop.ui.audit_view import (
    DETAILS,
    HASH,
    WHAT,
    WHEN,
    WHO,
    AuditView,
    compact,
    details_text,
    kind_words,
)
from hitl_desktop.ui.records import View

from .helpers import running_console, until
from .test_main_window import EMAIL, REFUND, outcome, review_ready, waiting_run


def cells(view: AuditView, column: int) -> list[str]:
    model = view.model
    return [str(model.index(row, column).data()) for row in range(model.rowCount())]


async def opened(app: ConsoleApp) -> AuditView:
    QTest.keyClick(app.window, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    view: AuditView = await until(lambda: app.window.audit_view, what="the audit view")
    assert view.isVisible()
    await view.idle()
    return view


async def test_the_audit_view_lists_a_decided_runs_entries_in_order(settings: Settings) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, REFUND)
        await review_ready(app, run_id)
        comment = "checked <b>twice</b><!-- with finance"
        assert await app.console.decide(
            app.window.review.view,  # type: ignore[arg-type]
            Decision(True, "tester", comment),
        )
        assert await outcome(app, run_id) == "applied"
        app.window.set_view(View.ALL)
        await until(lambda: app.window.select_run(run_id), what="the run in All")
        await until(
            lambda: app.console.current is not None and app.console.current.run.id == run_id,
            what="the run selected",
        )

        view = await opened(app)
        await until(lambda: view.model.rowCount() > 0, what="the entries")
        entries = await app.engine.audit_entries(run_id=run_id)
        assert [e.id for e in entries] == sorted(e.id for e in entries)
        assert cells(view, WHAT) == [kind_words(e.kind) for e in entries]
        assert cells(view, WHAT)[0] == "Decision" and cells(view, WHAT)[-1] == "Outcome"
        assert cells(view, WHO) == [e.actor for e in entries]
        assert set(cells(view, WHO)) == {app.engine.actor}
        assert cells(view, HASH) == [e.hash[:12] for e in entries]
        # When: local time, the UTC instant in the tooltip.
        first = datetime.fromisoformat(entries[0].at).astimezone()
        assert cells(view, WHEN)[0] == first.strftime("%H:%M:%S")
        tip = view.model.index(0, WHEN).data(Qt.ItemDataRole.ToolTipRole)
        assert first.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") in tip and "UTC" in tip
        # Details: compact plain text, the reviewer's markup kept as characters.
        decision = cells(view, DETAILS)[0]
        assert "verdict: approve" in decision and "reviewer: tester" in decision
        assert "checked <b>twice</b><!-- with finance" in decision
        assert "outcome: applied" in cells(view, DETAILS)[-1]
        assert view.verify_label.text() == f"Audit trail intact: {len(entries):,} entries"
        assert not view.empty.isVisible()


async def test_a_run_without_entries_says_so_and_the_view_follows_the_selection(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        decided = await waiting_run(app, EMAIL)
        await review_ready(app, decided)
        assert await app.console.decide(app.window.review.view, Decision(False, "tester"))  # type: ignore[arg-type]
        assert await outcome(app, decided) == "rejected"
        waiting = await waiting_run(app, REFUND)
        app.window.set_view(View.ALL)  # where the run stays once decided
        await until(lambda: app.window.proxy.row_of(waiting) >= 0, what="the run in All")
        await review_ready(app, waiting)
        view = await opened(app)
        await until(lambda: view.empty.isVisible(), what="the empty message")
        assert "no audit entries" in view.empty.text()
        assert view.model.rowCount() == 0 and view.run_id == waiting
        # Deciding the shown run adds its entries: the view refreshes itself.
        assert await app.console.decide(app.window.review.view, Decision(True, "tester"))  # type: ignore[arg-type]
        assert await outcome(app, waiting) == "applied"
        await until(lambda: "Outcome" in cells(view, WHAT), what="the new entries")
        await view.idle()
        total = len(await app.engine.audit_entries())
        assert view.verify_label.text() == f"Audit trail intact: {total:,} entries"


async def test_a_tampered_entry_is_named_where_the_chain_breaks(
    settings: Settings, tmp_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, EMAIL)
        await review_ready(app, run_id)
        assert await app.console.decide(app.window.review.view, Decision(False, "tester"))  # type: ignore[arg-type]
        assert await outcome(app, run_id) == "rejected"
        first = (await app.engine.audit_entries(run_id=run_id))[0]
        with sqlite3.connect(tmp_path / "runs.db") as conn:
            conn.execute("update hitl_audit set actor = 'mallory' where id = ?", (first.id,))
        view = await opened(app)
        await until(lambda: "broken" in view.verify_label.text(), what="the break")
        assert view.verify_label.text().startswith(f"Audit trail broken at entry {first.id}: ")


def test_details_are_one_compact_line() -> None:
    data = '{"verdict": "approve", "decision": {"reviewer": "ana", "comment": null, "edits": []},'
    data += ' "seen": "' + "ab" * 32 + '", "final": true}'
    assert details_text(data) == (
        "verdict: approve, decision: {reviewer: ana}, seen: abababababab…, final: true"
    )
    assert details_text("not json\n\tat all") == "not json at all"
    assert details_text(None) == ""
    assert compact(["a", 1, None]) == "[a, 1, null]"
    assert kind_words("TokenTimedOut") == "Expired"
    assert kind_words("SomethingNew") == "Something new"
