"""A db-change run under the store's approval policy: the first matching rule is fixed on its
review (auto-approval under a threshold, N approvals above it, the rule's timeout), a policy
that cannot be read fails the run, and no policy keeps one approval by anyone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hitl_desktop.agent.db_change import decide, request_change
from hitl_desktop.agent.review import Decision, review_from_steps
from hitl_desktop.agent.targets import Targets
from hitl_desktop.engine import DecisionRefused, Engine, RunStatus, TokenStatus
from tests.agent.helpers import change_for

from .test_db_change import finish, rows, waiting

POLICY = """
[[rule]]
name = "small refunds"
table = "refunds"
operation = "insert"
max_rows = 1
when = ["refunds.amount <= 50"]
auto_approve = true

[[rule]]
name = "large refunds"
table = "refunds"
approvals = 2
timeout = "2h"
"""


async def test_a_small_refund_is_applied_by_its_rule_and_a_large_one_waits_for_two(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    await engine.apply_policy(POLICY)
    change = change_for(targets, "Refund $20 on invoice 1042", f"sqlite:///{demo_path}")
    run = await request_change(engine, change)
    outcome = await finish(engine, run.id)
    assert outcome.outcome == "applied" and outcome.reviewer == "policy rule 'small refunds'"
    steps = await engine.get_steps(run.id)
    assert [s.kind for s in steps if s.kind in ("token", "wait")] == []  # nobody was asked
    review = review_from_steps(steps)
    assert review is not None and review.rule is not None
    assert (review.rule["name"], review.rule["policy_version"]) == ("small refunds", 1)
    [completed] = [e for e in await engine.audit_entries(run_id=run.id)]
    assert completed.kind == "RunCompleted"
    assert json.loads(completed.data or "")["reviewer"] == "policy rule 'small refunds'"

    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $60 on invoice 1042")
    token = await engine.get_token(token_id)
    assert token.requirement is not None and token.requirement.rule == "large refunds"
    assert token.requirement.approvals == 2
    assert 7100 < (token.expires_at - token.created_at).total_seconds() <= 7200  # the rule's
    first = await decide(engine, targets, token_id, Decision(True, "ana"))
    assert first.status == TokenStatus.WAITING
    with pytest.raises(DecisionRefused, match="already approved"):  # the same OS account
        await decide(engine, targets, token_id, Decision(True, "bob"))
    assert (await engine.get_run(run_id)).status == RunStatus.WAITING
    assert rows(demo_path, "select count(*) from refunds where amount = 60") == [(0,)]


async def test_no_policy_keeps_one_approval_by_anyone(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $20 on invoice 1042")
    token = await engine.get_token(token_id)
    assert token.requirement is not None and token.requirement.rule is None
    await decide(engine, targets, token_id, Decision(True, "ana"))
    assert (await finish(engine, run_id)).outcome == "applied"


async def test_a_policy_that_cannot_be_read_fails_the_run_and_writes_nothing(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    await engine.apply_policy("[[rule]]\nname = 'x'\napprovals = 0\n")  # as raw SQL could
    change = change_for(targets, "Refund $20 on invoice 1042", f"sqlite:///{demo_path}")
    run = await request_change(engine, change)
    failed = await engine.wait_for(run.id, [RunStatus.COMPLETED, RunStatus.FAILED])
    assert failed.status == RunStatus.FAILED
    assert "the approval policy in force (version 1) cannot be read" in (failed.error or "")
    assert rows(demo_path, "select count(*) from refunds where invoice_id = 1042") == [(0,)]
