"""Reverting applied db-change runs on real SQLite and PostgreSQL targets: the inverse is
reviewed and applied like any change, a row changed since the apply is a conflict, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitl_desktop.agent import Proposal, reflect_catalogue
from hitl_desktop.agent.apply import Applied, apply_proposal, writer_engine
from hitl_desktop.agent.db_change import (
    ChangeRequest,
    db_change_task,
    decide,
    request_change,
)
from hitl_desktop.agent.diff import diff_proposal
from hitl_desktop.agent.revert import REVERT_ENTRY, RevertRefused, revert, revert_state
from hitl_desktop.agent.review import Decision, Outcome, review_from_steps
from hitl_desktop.agent.targets import Targets
from hitl_desktop.agent.validation import validate
from hitl_desktop.engine import Engine, RunNotFound, RunStatus
from hitl_desktop.units.urls import sync_url
from tests.agent.helpers import change_for

INSERT = "Refund $20 on invoice 1042"
UPDATE = "Move customer 17 to the annual plan"
DELETE = "Delete refund 12"
TABLES = {INSERT: "refunds", UPDATE: "subscriptions", DELETE: "refunds"}


def snapshot(url: str, table: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"select * from {table} order by 1"))]
    finally:
        engine.dispose()


def execute(url: str, statement: str) -> None:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


async def waiting(engine: Engine, run_id: str) -> str:
    run = await engine.wait_for(run_id)
    assert run.status == RunStatus.WAITING, (run.status, run.error, run.output)
    assert run.waiting_token_id is not None
    return run.waiting_token_id


async def finish(engine: Engine, run_id: str) -> Outcome:
    run = await engine.wait_for(run_id, [RunStatus.COMPLETED, RunStatus.FAILED])
    assert run.status == RunStatus.COMPLETED, run.error
    return Outcome.from_json(run.output)


async def applied(engine: Engine, targets: Targets, change: ChangeRequest) -> str:
    run = await request_change(engine, change)
    token = await waiting(engine, run.id)
    await decide(engine, targets, token, Decision(True, "ana"))
    assert (await finish(engine, run.id)).outcome == "applied"
    return run.id


async def approve(engine: Engine, targets: Targets, run_id: str, reviewer: str = "bo") -> Outcome:
    token = await waiting(engine, run_id)
    await decide(engine, targets, token, Decision(True, reviewer))
    return await finish(engine, run_id)


async def round_trip(engine: Engine, targets: Targets, url: str, text: str) -> None:
    table = TABLES[text]
    before = snapshot(url, table)
    run_id = await applied(engine, targets, change_for(targets, text, url))
    assert snapshot(url, table) != before

    revert_id = await revert(engine, run_id)
    token = await waiting(engine, revert_id)
    review = review_from_steps(await engine.get_steps(revert_id))
    assert review is not None and review.proposer == f"revert of run {run_id}"
    assert snapshot(url, table) != before  # nothing is written while the revert waits
    assert (await approve(engine, targets, revert_id)).outcome == "applied"
    assert snapshot(url, table) == before
    assert (await engine.get_token(token)).status == "COMPLETED"

    # The two runs name each other, and the request is in the audit trail.
    assert (await engine.get_run(revert_id)).payload["reverts"] == run_id
    state = await revert_state(engine, run_id)
    assert (state.reverted_by, state.reverted, state.revertible) == ((revert_id,), revert_id, False)
    assert state.reason == f"run {run_id} was already reverted by run {revert_id}"
    assert (await revert_state(engine, revert_id)).reverts == run_id
    entries = [e for e in await engine.audit_entries(run_id=run_id) if e.kind == REVERT_ENTRY]
    assert [json.loads(e.data or "")["run"] for e in entries] == [revert_id]
    assert entries[0].actor == engine.actor
    assert (await engine.verify_audit()).broken is None


@pytest.mark.parametrize("text", [INSERT, UPDATE, DELETE])
async def test_a_revert_restores_a_sqlite_target(
    engine: Engine, targets: Targets, demo_path: Path, text: str
) -> None:
    await round_trip(engine, targets, f"sqlite:///{demo_path}", text)


async def test_a_revert_restores_a_postgresql_target(
    engine: Engine, targets: Targets, pg_target: str
) -> None:
    for text in (INSERT, UPDATE, DELETE):
        await round_trip(engine, targets, pg_target, text)


async def test_a_row_changed_since_the_apply_ends_the_revert_in_conflict(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    url = f"sqlite:///{demo_path}"
    run_id = await applied(engine, targets, change_for(targets, UPDATE, url))
    # Changed before the revert is requested: it ends conflict before anyone is asked.
    execute(url, "update subscriptions set status='past_due' where id=20")
    changed = snapshot(url, "subscriptions")
    early = await revert(engine, run_id)
    outcome = await finish(engine, early)
    assert outcome.outcome == "conflict" and outcome.reviewer is None
    assert outcome.conflicts[0]["columns"] == {"status": ["active", "past_due"]}
    assert f"changed since run {run_id} applied it (status 'active' → 'past_due')" in (
        outcome.message
    )
    assert snapshot(url, "subscriptions") == changed

    # Changed while the revert waits for review: the apply finds it, nothing is written.
    execute(url, "update subscriptions set status='active' where id=20")
    late = await revert(engine, run_id)
    token = await waiting(engine, late)
    execute(url, "update subscriptions set canceled_on='2025-01-31' where id=20")
    changed = snapshot(url, "subscriptions")
    await decide(engine, targets, token, Decision(True, "bo"))
    outcome = await finish(engine, late)
    assert outcome.outcome == "conflict"
    assert outcome.conflicts[0]["columns"] == {"canceled_on": [None, "2025-01-31"]}
    assert snapshot(url, "subscriptions") == changed
    assert (await revert_state(engine, run_id)).reverted_by == (early, late)


async def test_refusals_name_the_reason(engine: Engine, targets: Targets, demo_path: Path) -> None:
    url = f"sqlite:///{demo_path}"
    rejected = await request_change(engine, change_for(targets, INSERT, url))
    await decide(engine, targets, await waiting(engine, rejected.id), Decision(False, "bo"))
    await finish(engine, rejected.id)
    with pytest.raises(RevertRefused, match="ended rejected: nothing was written"):
        await revert(engine, rejected.id)

    pending = await request_change(engine, change_for(targets, UPDATE, url))
    await waiting(engine, pending.id)
    with pytest.raises(RevertRefused, match="is WAITING: only an applied change"):
        await revert(engine, pending.id)
    with pytest.raises(RunNotFound):
        await revert(engine, "run_nope")

    run_id = await applied(engine, targets, change_for(targets, DELETE, url))
    with pytest.raises(RevertRefused, match="through the same profile, not 'other'"):
        await revert(engine, run_id, profile="other")
    elsewhere = Targets()
    with pytest.raises(RevertRefused, match="cannot be reverted here: this machine has no"):
        await revert(engine, run_id, targets=elsewhere)
    first = await revert(engine, run_id, targets=targets)
    await waiting(engine, first)
    with pytest.raises(RevertRefused, match=f"already requested and is still WAITING: run {first}"):
        await revert(engine, run_id)
    state = await revert_state(engine, run_id)
    assert (state.revertible, state.reverted_by, state.reverted) == (False, (first,), None)

    # A rejected revert may be requested again; the original then counts two reverts.
    await decide(engine, targets, await waiting(engine, first), Decision(False, "bo"))
    await finish(engine, first)
    assert (await revert_state(engine, run_id)).revertible
    second = await revert(engine, run_id)
    assert second != first
    assert (await approve(engine, targets, second)).outcome == "applied"
    with pytest.raises(RevertRefused, match=f"already reverted by run {second}"):
        await revert(engine, run_id)
    # A revert is an applied change like another: it can be reverted in turn.
    assert (await revert_state(engine, second)).revertible


async def test_a_deleted_row_with_hidden_columns_is_not_revertible(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    url = f"sqlite:///{demo_path}"
    run_id = await applied(
        engine, targets, change_for(targets, DELETE, url, deny=["refunds.reason"])
    )
    state = await revert_state(engine, run_id)
    assert not state.revertible
    assert state.reason is not None and "columns hidden from the agent" in state.reason


async def test_a_revert_waiting_for_review_survives_a_restart(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    """The engine stops while the revert waits; another engine on the store replays its
    proposal and check from the store and applies it once."""
    url = f"sqlite:///{demo_path}"
    before = snapshot(url, "refunds")
    run_id = await applied(engine, targets, change_for(targets, INSERT, url))
    revert_id = await revert(engine, run_id)
    token = await waiting(engine, revert_id)
    steps = [s.name for s in await engine.get_steps(revert_id)]
    await engine.stop()
    again = Engine(engine.url, tasks=[db_change_task(targets)])
    await again.start()
    try:
        await decide(again, targets, token, Decision(True, "bo"))
        assert (await finish(again, revert_id)).outcome == "applied"
        assert [s.name for s in await again.get_steps(revert_id)][: len(steps)] == steps
    finally:
        await again.stop()
    assert snapshot(url, "refunds") == before


def test_a_replayed_apply_returns_the_images_its_marker_recorded(demo_path: Path) -> None:
    """A process that dies after the target committed but before the engine recorded the step
    applies again: the marker says it was done, and gives the same row images."""
    url = f"sqlite:///{demo_path}"
    reader = sa.create_engine(url)
    writer = writer_engine(url)
    try:
        catalogue = reflect_catalogue(reader)
        proposal = Proposal.model_validate(
            {
                "summary": "s",
                "rationale": "r",
                "changes": [
                    {"op": "update", "table": "invoices", "key": {"id": 4854},
                     "values": {"status": "void"}},
                    {"op": "insert", "table": "refunds", "values": {
                        "invoice_id": 1042, "amount": "20.00", "reason": "goodwill",
                        "status": "pending", "created_at": "2024-03-01T10:00:00"}},
                ],
            }
        )  # fmt: skip
        diffs = diff_proposal(validate(proposal, catalogue, reader), reader)
        first = apply_proposal(
            writer, catalogue, proposal, diffs, run_id="r", step="apply", max_rows=5
        )
        again = apply_proposal(
            writer, catalogue, proposal, diffs, run_id="r", step="apply", max_rows=5
        )
    finally:
        reader.dispose()
        writer.dispose()
    assert isinstance(first, Applied) and isinstance(again, Applied)
    assert again.replayed and again.images == first.images
    assert first.images is not None
    update, insert = first.images
    assert update.before is not None and update.after is not None
    assert (update.before["status"], update.after["status"]) == ("open", "void")
    assert insert.before is None and insert.after is not None
    assert insert.key == {"id": insert.after["id"]} and insert.after["amount"] == "20.00"
