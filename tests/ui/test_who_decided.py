"""Who decided, in the console: the review pane names the identity the store recorded, with the
decision's display name beside it; a decision that comes second is told who was first.

Another engine on the same store file decides: a review-only console acting as "ana", where on
SQLite the actor stands for the OS account a second reviewer's machine would record.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hitl_desktop.agent import Decision, Edit
from hitl_desktop.config import Settings
from hitl_desktop.engine import Engine, RunStatus
from hitl_desktop.ui.records import View
from tests.agent.helpers import seen

from .helpers import rows, running_console, until
from .test_main_window import EMAIL, REFUND, outcome, review_ready, waiting_run


def local_minute(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M")


async def test_the_review_pane_says_who_decided_when_with_what_comment_and_edits(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, REFUND)
        await review_ready(app, run_id)
        pane = app.window.review
        assert "Requested by " + app.engine.actor in pane.details.toPlainText()
        assert "Approved by" not in pane.details.toPlainText()
        token_id = pane.view.token.id  # type: ignore[union-attr]
        comment = "checked <b>twice</b><!-- with finance"
        decision = Decision(True, "Ana Lima", comment, (Edit(0, {"amount": "15.00"}),))
        async with Engine(settings.store_url, actor="ana", execute=False) as other:
            decided = await other.decide(
                token_id, decision.to_json(), seen=await seen(other, run_id)
            )
        assert decided.completed_by == "ana"
        assert await outcome(app, run_id) == "applied"
        assert rows(target_path, "select amount from refunds where invoice_id = 1042")[-1][0] == 15

        app.window.set_view(View.ALL)
        await until(lambda: app.window.select_run(run_id), what="the run in All")
        await until(
            lambda: pane.view is not None and pane.view.run.status is RunStatus.COMPLETED,
            what="the pane showing the finished run",
        )
        assert decided.completed_at is not None
        text = pane.details.toPlainText()
        # The comment is the reviewer's text, shown as typed: no markup is interpreted.
        assert (
            f"Approved by ana at {local_minute(decided.completed_at)} (display name “Ana Lima”)"
            f" — comment: {comment} — edits: amount 20.00 → 15.00"
        ) in text
        assert f"Requested by {app.engine.actor} at " in text


async def test_a_display_name_equal_to_the_identity_is_shown_once(settings: Settings) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, EMAIL)
        await review_ready(app, run_id)
        pane = app.window.review
        token_id = pane.view.token.id  # type: ignore[union-attr]
        async with Engine(settings.store_url, actor="ana", execute=False) as other:
            await other.decide(
                token_id, Decision(False, "ana").to_json(), seen=await seen(other, run_id)
            )
        assert await outcome(app, run_id) == "rejected"
        app.window.set_view(View.ALL)
        await until(lambda: app.window.select_run(run_id), what="the run in All")
        await until(
            lambda: pane.view is not None and pane.view.decided is not None,
            what="the pane re-read with the decision",
        )
        text = pane.details.toPlainText()
        assert "Rejected by ana at " in text and "display name" not in text
        assert "comment" not in text and "edits" not in text


async def test_a_second_decision_is_told_who_decided_first_and_changes_nothing(
    settings: Settings, target_path: Path
) -> None:
    async with running_console(settings) as app:
        run_id = await waiting_run(app, EMAIL)
        await review_ready(app, run_id)
        stale = app.window.review.view
        assert stale is not None and stale.token is not None
        before = rows(target_path, "select email from customers where id = 23")
        shown: list[str] = []
        app.window.statusBar().messageChanged.connect(shown.append)
        async with Engine(settings.store_url, actor="ana", execute=False) as other:
            first = await other.decide(
                stale.token.id,
                Decision(False, "Ana Lima", "duplicate").to_json(),
                seen=await seen(other, run_id),
            )
        assert first.completed_at is not None
        # This console's reviewer decides from what the pane showed, after ana's commit.
        assert await app.console.decide(stale, Decision(True, "tester")) is False
        said = f"Already decided by ana at {local_minute(first.completed_at)} — nothing was changed"
        assert said in shown
        pane = app.window.review
        await until(lambda: not pane.approve_button.isEnabled(), what="the buttons disabled")
        assert await outcome(app, run_id) == "rejected"
        assert rows(target_path, "select email from customers where id = 23") == before
        # The row shows the real outcome.
        app.window.set_view(View.ALL)
        await until(
            lambda: (r := app.model.get(run_id)) is not None and r.state == "rejected",
            what="the row rejected",
        )
        token = await app.engine.get_token(stale.token.id)
        assert token.completed_by == "ana" and token.output["decision"] == "reject"
