"""The db-change task end to end on real SQLite files: propose, wait, decide, write once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.agent.db_change import (
    ChangeRequest,
    EditRefused,
    RequestInvalid,
    decide,
    request_change,
)
from hitl_desktop.agent.offline import DEMO_REQUESTS
from hitl_desktop.agent.review import Decision, Edit, Outcome, review_from_steps
from hitl_desktop.agent.targets import Targets
from hitl_desktop.engine import Engine, OutputRefused, RunStatus, TokenAlreadyFinished
from tests.agent.helpers import change_for


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


async def waiting(
    engine: Engine, targets: Targets, target: Path, text: str, **kw: Any
) -> tuple[str, str]:
    run = await request_change(engine, change_for(targets, text, f"sqlite:///{target}", **kw))
    run = await engine.wait_for(run.id)
    assert run.status == RunStatus.WAITING, run.error
    assert run.waiting_token_id is not None
    return run.id, run.waiting_token_id


async def finish(engine: Engine, run_id: str) -> Outcome:
    run = await engine.wait_for(run_id, [RunStatus.COMPLETED, RunStatus.FAILED])
    assert run.status == RunStatus.COMPLETED, run.error
    return Outcome.from_json(run.output)


@pytest.mark.parametrize("text", DEMO_REQUESTS)
async def test_every_demo_request_waits_with_a_review_and_applies_once(
    engine: Engine, targets: Targets, demo_path: Path, text: str
) -> None:
    before = {t: rows(demo_path, f"select * from {t} order by 1") for t in ("refunds", "invoices")}
    run_id, token_id = await waiting(engine, targets, demo_path, text)
    review = review_from_steps(await engine.get_steps(run_id))
    assert review is not None and review.request == text and review.proposer == "offline (demo)"
    assert review.diffs and review.summary
    token = await engine.get_token(token_id)
    assert set(token.tags) == set(review.tables)
    # Nothing is written while the run waits.
    assert before == {t: rows(demo_path, f"select * from {t} order by 1") for t in before}
    await decide(engine, targets, token_id, Decision(approve=True, reviewer="ana", comment="ok"))
    outcome = await finish(engine, run_id)
    assert (outcome.outcome, outcome.reviewer, outcome.rows) == ("applied", "ana", 1)
    markers = rows(demo_path, "select run_id, step, rows from hitl_applied_writes")
    assert markers == [(run_id, "apply", 1)]


async def test_refund_writes_the_reviewed_row(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $20 on invoice 1042")
    review = review_from_steps(await engine.get_steps(run_id))
    assert review is not None
    assert review.diffs[0].after is not None and review.diffs[0].after["amount"] == "20.00"
    await decide(engine, targets, token_id, Decision(True, "ana"))
    await finish(engine, run_id)
    assert rows(
        demo_path, "select invoice_id, amount, status from refunds where invoice_id=1042"
    ) == [(1042, 20, "pending")]


async def test_reject_and_expiry_write_nothing(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $20 on invoice 1042")
    await decide(engine, targets, token_id, Decision(False, "bo", comment="customer withdrew"))
    outcome = await finish(engine, run_id)
    assert (outcome.outcome, outcome.reviewer, outcome.comment) == (
        "rejected",
        "bo",
        "customer withdrew",
    )
    expiring, _ = await waiting(
        engine, targets, demo_path, "Refund $5 on invoice 1042", timeout="300ms"
    )
    outcome = await finish(engine, expiring)
    assert outcome.outcome == "expired" and outcome.reviewer is None
    assert rows(demo_path, "select count(*) from refunds where invoice_id=1042") == [(0,)]
    # Nothing was approved, so the marker table was never created either.
    assert rows(demo_path, "select name from sqlite_master where name='hitl_applied_writes'") == []


async def test_a_token_is_decided_once(engine: Engine, targets: Targets, demo_path: Path) -> None:
    run_id, token_id = await waiting(engine, targets, demo_path, "Void invoice 4854")
    await decide(engine, targets, token_id, Decision(True, "ana"))
    with pytest.raises(TokenAlreadyFinished):
        await decide(engine, targets, token_id, Decision(False, "bo"))
    assert (await finish(engine, run_id)).outcome == "applied"
    assert rows(demo_path, "select status from invoices where id=4854") == [("void",)]


async def test_edits_are_revalidated(engine: Engine, targets: Targets, demo_path: Path) -> None:
    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $20 on invoice 1042")
    edit = Edit(0, {"amount": "twelve"})
    # A bad edit is refused before the token completes: the approval is not used up.
    with pytest.raises(EditRefused, match="amount") as refused:
        await decide(engine, targets, token_id, Decision(True, "ana", edits=(edit,)))
    assert refused.value.problems[0].column == "amount"
    assert (await engine.get_token(token_id)).status == "WAITING"
    assert (await engine.get_run(run_id)).status == RunStatus.WAITING
    assert rows(demo_path, "select count(*) from refunds where invoice_id=1042") == [(0,)]

    await decide(
        engine, targets, token_id, Decision(True, "ana", edits=(Edit(0, {"amount": "15.50"}),))
    )
    outcome = await finish(engine, run_id)
    assert outcome.outcome == "applied" and "edits" in outcome.message
    assert rows(demo_path, "select amount from refunds where invoice_id=1042") == [(15.5,)]


async def test_a_row_changed_since_the_proposal_is_a_conflict(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    run_id, token_id = await waiting(
        engine, targets, demo_path, "Move customer 17 to the annual plan"
    )
    with sqlite3.connect(demo_path) as conn:
        conn.execute("update subscriptions set status='past_due' where id=20")
    await decide(engine, targets, token_id, Decision(True, "ana"))
    outcome = await finish(engine, run_id)
    assert outcome.outcome == "conflict"
    assert outcome.conflicts[0]["columns"] == {"status": ["active", "past_due"]}
    assert rows(demo_path, "select plan_id from subscriptions where id=20") == [(3,)]


async def test_requests_the_demo_proposer_cannot_do_fail_clearly(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    for text, expected in [
        ("Please buy me a pony", "does not understand"),
        ("Refund $5000 on invoice 1042", "left to refund"),
        ("Refund $20 on invoice 999999", "there is no invoice"),
    ]:
        run = await request_change(engine, change_for(targets, text, f"sqlite:///{demo_path}"))
        run = await engine.wait_for(run.id)
        assert run.status == RunStatus.FAILED and run.error is not None
        assert expected in run.error
    assert await engine.list_tokens() == []


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"request": " ", "profile": "shop"}, "empty"),
        ({"request": "x", "profile": "no/slashes"}, "cannot name a profile"),
        ({"request": "x", "timeout": "soon"}, "timeout"),
        ({"request": "x", "timeout": 5}, "timeout"),
        ({"request": "x", "colour": 1}, "unknown field"),
        # What a run may reach is never the run's to say.
        ({"request": "x", "target": "sqlite:///x.db"}, "'target'.*target profile"),
        ({"request": "x", "base_url": "http://evil.example"}, "'base_url'"),
        ({"request": "x", "deny": []}, "'deny'"),
        ({"request": "x", "allow": ["customers"]}, "'allow'"),
        ({"request": "x", "proposer": "openai", "model": "m"}, "'model', 'proposer'"),
        ({"request": "x", "max_rows": 10_000}, "'max_rows'"),
    ],
)
def test_bad_requests_name_the_problem(payload: dict[str, Any], expected: str) -> None:
    with pytest.raises(RequestInvalid, match=expected):
        ChangeRequest.from_json(payload)


async def test_postgresql_target_applies_once_and_sees_conflicts(
    engine: Engine, targets: Targets, pg_target: str
) -> None:
    import sqlalchemy as sa

    run = await request_change(engine, change_for(targets, "Refund $20 on invoice 1042", pg_target))
    run = await engine.wait_for(run.id)
    assert run.status == RunStatus.WAITING, run.error
    assert run.waiting_token_id is not None
    await decide(engine, targets, run.waiting_token_id, Decision(True, "ana"))
    assert (await finish(engine, run.id)).outcome == "applied"

    conflicted = await request_change(
        engine, change_for(targets, "Move customer 17 to the annual plan", pg_target)
    )
    conflicted = await engine.wait_for(conflicted.id)
    assert conflicted.waiting_token_id is not None
    target = sa.create_engine(pg_target.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with target.begin() as conn:
            conn.execute(sa.text("update subscriptions set status='past_due' where id=20"))
        await decide(engine, targets, conflicted.waiting_token_id, Decision(True, "ana"))
        assert (await finish(engine, conflicted.id)).outcome == "conflict"
        with target.connect() as conn:
            refunds = conn.execute(
                sa.text("select amount from refunds where invoice_id=1042")
            ).all()
            plan = conn.execute(sa.text("select plan_id from subscriptions where id=20")).all()
            markers = conn.execute(sa.text("select count(*) from hitl_applied_writes")).scalar()
    finally:
        target.dispose()
    assert [str(r.amount) for r in refunds] == ["20.00"]
    assert plan == [(3,)] and markers == 1


async def test_edits_can_be_checked_before_deciding(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    from hitl_desktop.agent.db_change import check_edits

    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $20 on invoice 1042")
    problems = await check_edits(
        engine, targets, run_id, (Edit(0, {"amount": "lots", "colour": "red"}),)
    )
    assert {(p.column, p.code) for p in problems} == {
        ("amount", "bad_value"),
        ("colour", "unknown_column"),
    }
    assert await check_edits(engine, targets, run_id, (Edit(0, {"amount": "5.00"}),)) == []
    assert (await engine.get_token(token_id)).status == "WAITING"  # checking decides nothing


async def test_the_engine_refuses_a_completion_that_is_no_decision(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    """Checked where the decision commits, not only by the clients: a token completed with
    anything but a decision stays waiting, whoever completes it."""
    run_id, token_id = await waiting(engine, targets, demo_path, "Void invoice 4854")
    for output in ({"approved": True}, {"decision": "approve"}, "yes", None):
        with pytest.raises(OutputRefused, match="still waits"):
            await engine.decide(token_id, output)
        assert (await engine.get_token(token_id)).status == "WAITING"
    assert (await engine.get_run(run_id)).status == RunStatus.WAITING
    await decide(engine, targets, token_id, Decision(False, "bo"))
    assert (await finish(engine, run_id)).outcome == "rejected"


async def test_an_edit_that_reaches_the_apply_unchecked_ends_invalid_edit(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    """A client that skips the pre-decision check (or a row that changed since) still cannot
    make the apply write a bad value: the locked re-validation ends the run invalid_edit."""
    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $20 on invoice 1042")
    edited = Decision(True, "ana", edits=(Edit(0, {"amount": "twelve"}),))
    review = review_from_steps(await engine.get_steps(run_id))
    assert review is not None
    await engine.decide(token_id, edited.to_json(), seen=review.diff_hash)
    outcome = await finish(engine, run_id)
    assert outcome.outcome == "invalid_edit" and outcome.problems[0]["column"] == "amount"
    assert rows(demo_path, "select count(*) from refunds where invoice_id=1042") == [(0,)]


async def test_a_decision_and_what_it_wrote_are_in_the_audit_trail(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    import json

    run_id, token_id = await waiting(engine, targets, demo_path, "Refund $20 on invoice 1042")
    await decide(engine, targets, token_id, Decision(True, "ana", comment="customer called"))
    await finish(engine, run_id)
    entries = await engine.audit_entries()
    assert [(e.kind, e.run_id) for e in entries] == [
        ("Decision", run_id),
        ("RunCompleted", run_id),
    ]
    entry = json.loads(entries[0].data or "")
    decision = entry["decision"]
    assert (decision["decision"], decision["reviewer"], decision["comment"]) == (
        "approve",
        "ana",
        "customer called",
    )
    review = review_from_steps(await engine.get_steps(run_id))
    assert review is not None and entry["seen"] == review.diff_hash
    assert (entry["verdict"], entry["rule"], entry["approvals"], entry["final"]) == (
        "approve",
        None,
        1,
        True,
    )
    assert entries[0].actor == engine.actor and entries[0].token_id == token_id
    assert json.loads(entries[1].data or "")["outcome"] == "applied"
    assert (await engine.verify_audit()).broken is None
