"""Reminders of overdue reviews, and what the review pane says of a review under a rule: the
rule, who may decide, escalation, and the approvals so far ("1 of 2: ana, 10:42")."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hitl_desktop.engine import Engine, Requirement, task, wait
from hitl_desktop.ui.records import RunView, format_when
from hitl_desktop.ui.reminders import Reminders
from hitl_desktop.ui.review_pane import approvals_text, rule_text

from .helpers import until

START = 1_900_000_000.0


@task("reminded")
async def reminded(ctx, payload):
    requirement = Requirement(
        rule="slow refunds",
        approvals=2,
        approvers=("ana", "bob"),
        self_approval=False,
        remind_after=3600.0,
        escalate_to=("lead",),
    )
    token = await wait.create_token(timeout="1d", requirement=requirement)
    return (await wait.for_token(token)).output


async def _waiting(engine: Engine) -> tuple[str, str]:
    run = await engine.trigger("reminded", {})
    waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
    assert waiting.waiting_token_id is not None
    return run.id, waiting.waiting_token_id


async def test_an_overdue_review_is_announced_once(tmp_path: Path) -> None:
    now = [START]
    async with Engine(
        f"sqlite:///{tmp_path / 'runs.db'}", tasks=[reminded], clock=lambda: now[0]
    ) as engine:
        run_id, _ = await _waiting(engine)
        reminders = Reminders(engine, every_ms=20)
        told: list[tuple[str, str]] = []
        reminders.overdue.connect(lambda run, text: told.append((run, text)))
        reminders.start()
        try:
            await until(lambda: reminders._timer.isActive(), what="the timer")
            for _ in range(10):  # several ticks before the deadline: nothing to say
                await asyncio.sleep(0.025)
            assert told == []
            now[0] += 3601
            await until(lambda: told, what="the reminder")
            for _ in range(10):  # and once only
                await asyncio.sleep(0.025)
        finally:
            reminders.stop()
    [(run, text)] = told
    assert run == run_id
    assert text.startswith("A review under rule 'slow refunds' has waited since ")
    assert text.endswith("(0 of 2); lead may now decide too")


async def test_the_pane_says_the_rule_and_the_approvals_so_far(tmp_path: Path) -> None:
    now = [START]
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with Engine(url, tasks=[reminded], clock=lambda: now[0]) as engine:
        run_id, token_id = await _waiting(engine)
        view = await _view(engine, run_id, token_id)
        assert rule_text(view, now[0]) == (
            "Rule 'slow refunds': 2 approvals by ana, bob, not by the requester; lead may "
            f"decide too from {format_when(START + 3600, now[0])}"
        )
        assert approvals_text(view, now[0]) == "0 of 2 approvals so far"
        async with Engine(url, actor="ana", execute=False, clock=lambda: now[0]) as ana:
            await ana.decide(token_id, {"decision": "approve"})
        view = await _view(engine, run_id, token_id)
        assert approvals_text(view, now[0]) == f"1 of 2: ana, {format_when(START, now[0])}"
        now[0] += 3601
        assert "; overdue since " in (rule_text(view, now[0]) or "")


async def _view(engine: Engine, run_id: str, token_id: str) -> RunView:
    run = await engine.get_run(run_id)
    return RunView.build(run, await engine.get_steps(run_id), await engine.get_token(token_id))


async def test_waiting_for_me_lists_only_the_runs_i_may_decide(settings, target_path) -> None:
    from hitl_desktop.ui.records import View

    from .helpers import running_console
    from .test_main_window import EMAIL, REFUND, waiting_run

    async with running_console(settings) as app:
        await app.engine.apply_policy(
            '[[rule]]\nname = "customer data"\ntable = "customers"\napprovers = ["dpo"]\n'
        )
        email = await waiting_run(app, EMAIL)
        refund = await waiting_run(app, REFUND)
        app.window.set_view(View.MINE)
        await until(lambda: app.model.get(refund) is not None, what="the refund in Waiting for me")
        await app.console.idle()
        assert app.model.get(email) is None  # only "dpo" may decide it
        app.window.set_view(View.WAITING)
        await until(lambda: app.model.get(email) is not None, what="both in Waiting")
