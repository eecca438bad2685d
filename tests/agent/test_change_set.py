"""Change sets: a request of independent parts, each part reviewed on its own token, written all
together in one target transaction once every part is approved (or, with apply="each", each on
its own as soon as it is approved). Real SQLite stores and targets; "two consoles" are two
engines on one store file, each acting as another reviewer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.agent import (
    APPLY_MODES,
    DEMO_CHANGE_SET,
    ApplyMode,
    ChangeRequest,
    ChangeSet,
    Decision,
    Edit,
    Outcome,
    Review,
    Targets,
    db_change_task,
    decide,
    read_change_set,
    request_change,
    revert,
    review_from_steps,
)
from hitl_desktop.engine import DecisionRefused, Engine, RunStatus, TokenStatus
from tests.agent.helpers import BOTH, DEMO_SET_PARTS, NOTHING, change_for, demo_set_written

from .test_db_change import finish, rows

REFUND, PAID = DEMO_SET_PARTS
written = demo_set_written


def markers(target: Path) -> list[tuple[Any, ...]]:
    found = rows(target, "select name from sqlite_master where name = 'hitl_applied_writes'")
    if not found:
        return []
    return rows(target, "select run_id, step, rows from hitl_applied_writes order by step")


@pytest.fixture
def consoles(tmp_path: Path, targets: Targets) -> Callable[..., Any]:
    """consoles("ana", "bob") → engines on one SQLite store, each acting as that reviewer."""

    @asynccontextmanager
    async def open_(*actors: str) -> AsyncIterator[list[Engine]]:
        url = f"sqlite:///{tmp_path / 'runs.db'}"
        engines = [Engine(url, tasks=[db_change_task(targets)], actor=a) for a in actors]
        for engine in engines:
            await engine.start()
        try:
            yield engines
        finally:
            for engine in engines:
                await engine.stop()

    return open_


async def until(engine: Engine, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait, event by event, until *check* holds (a bounded number of events)."""
    async with engine.events() as stream, asyncio.timeout(60):
        for _ in range(10_000):
            if await check():
                return
            await stream.__anext__()
    raise AssertionError("the check never held")


async def waiting_set(engine: Engine, change: ChangeRequest) -> tuple[str, ChangeSet]:
    run = await request_change(engine, change)
    run = await engine.wait_for(run.id)
    assert run.status == RunStatus.WAITING, run.error
    found = await read_change_set(engine, run.id)
    assert found is not None
    return run.id, found


async def test_a_change_set_is_reviewed_in_parts_from_two_consoles_and_written_at_once(
    consoles: Callable[..., Any], targets: Targets, demo_path: Path
) -> None:
    change = change_for(targets, DEMO_CHANGE_SET, f"sqlite:///{demo_path}")
    async with consoles("ana", "bob") as (ana, bob):
        run_id, found = await waiting_set(ana, change)
        refund, paid = found.parts
        assert refund.token_id and paid.token_id
        assert (refund.name, paid.name) == (REFUND, PAID) and found.apply == "all"
        assert [d.table for d in refund.review.diffs] == ["refunds"]
        assert [d.table for d in paid.review.diffs] == ["invoices"]
        # Each part's token: its own tables as tags, its own diffs' hash as what must be seen.
        for part in found.parts:
            assert part.token_id is not None and part.status == "waiting"
            token = await ana.get_token(part.token_id)
            assert set(token.tags) == set(part.review.tables)
            assert token.requirement is not None
            assert token.requirement.seen == part.review.diff_hash
        # The whole: the parts' diffs one after the other, and every part's reads.
        review = review_from_steps(await ana.get_steps(run_id))
        assert review is not None and review.rule is None
        assert [d.index for d in review.diffs] == [0, 1]
        assert {r.table for r in refund.review.reads} == {"invoices", "refunds"}
        assert [r.describe() for r in paid.review.reads] == ["invoices id=4854"]

        await decide(ana, targets, paid.token_id, Decision(True, "ana"))
        assert written(demo_path) == NOTHING  # nothing until every part is approved
        now = await read_change_set(bob, run_id)
        assert now is not None and [p.status for p in now.parts] == ["waiting", "approved"]
        assert now.parts[1].decided_by == ("ana",) and (await ana.get_run(run_id)).status == (
            RunStatus.WAITING
        )

        await decide(bob, targets, refund.token_id, Decision(True, "bob", "ok"))
        outcome = await finish(bob, run_id)
    assert (outcome.outcome, outcome.rows) == ("applied", 2)
    assert outcome.reviewer == "ana, bob" or outcome.reviewer == "bob, ana"
    assert [(p.name, p.outcome.outcome, p.outcome.reviewer) for p in outcome.parts] == [
        (REFUND, "applied", "bob"),
        (PAID, "applied", "ana"),
    ]
    assert written(demo_path) == BOTH
    assert markers(demo_path) == [(run_id, "apply", 2)]  # ONE transaction for both parts


async def test_one_rejection_rejects_the_set_and_nothing_is_written(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    change = change_for(targets, DEMO_CHANGE_SET, f"sqlite:///{demo_path}")
    run_id, found = await waiting_set(engine, change)
    refund, paid = found.parts
    assert refund.token_id and paid.token_id
    await decide(engine, targets, refund.token_id, Decision(False, "ana", "wrong invoice"))
    assert (await engine.get_run(run_id)).status == RunStatus.WAITING  # the other part is open
    now = await read_change_set(engine, run_id)
    assert now is not None and [p.status for p in now.parts] == ["rejected", "waiting"]
    await decide(engine, targets, paid.token_id, Decision(True, "bob"))
    outcome = await finish(engine, run_id)
    assert outcome.outcome == "rejected" and outcome.reviewer == "ana"
    assert "part 1 of 2 ('Refund $20 on invoice 1042') was rejected by ana (wrong invoice)" in (
        outcome.message
    )
    assert [(p.outcome.outcome, p.outcome.reviewer) for p in outcome.parts] == [
        ("rejected", "ana"),
        ("rejected", "bob"),
    ]
    assert outcome.parts[1].outcome.message.startswith("approved by bob, not written: part 1")
    assert written(demo_path) == NOTHING and markers(demo_path) == []
    ended = await read_change_set(engine, run_id)
    assert ended is not None and [p.status for p in ended.parts] == ["rejected", "rejected"]


async def test_an_expired_part_expires_the_set(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    change = change_for(targets, DEMO_CHANGE_SET, f"sqlite:///{demo_path}", timeout="1s")
    run_id, found = await waiting_set(engine, change)
    assert found.parts[0].token_id is not None
    await decide(engine, targets, found.parts[0].token_id, Decision(True, "ana"))
    run = await engine.wait_for(run_id, [RunStatus.COMPLETED, RunStatus.FAILED], timeout=30)
    outcome = Outcome.from_json(run.output)
    assert outcome.outcome == "expired"
    assert "part 2 of 2 ('Mark invoice 4854 as paid') had no decision within 1s" in outcome.message
    assert [p.outcome.outcome for p in outcome.parts] == ["expired", "expired"]
    assert written(demo_path) == NOTHING


async def test_each_mode_writes_an_approved_part_at_once_and_a_rejected_one_never(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    change = replace(change_for(targets, DEMO_CHANGE_SET, f"sqlite:///{demo_path}"), apply="each")
    assert ChangeRequest.from_json(change.to_json()).apply == "each"
    run_id, found = await waiting_set(engine, change)
    assert found.apply == "each"
    refund, paid = found.parts
    assert refund.token_id and paid.token_id
    await decide(engine, targets, paid.token_id, Decision(True, "ana"))

    async def paid_written() -> bool:
        run = await engine.get_run(run_id)
        return run.status == RunStatus.WAITING and len(await engine.get_steps(run_id)) > len(steps)

    # Written as soon as approved, while the other part still waits.
    steps = await engine.get_steps(run_id)
    await until(engine, paid_written)
    now = await read_change_set(engine, run_id)
    assert now is not None
    assert written(demo_path) == {"refunds": [], "invoice": [("paid",)]}
    assert [p.status for p in now.parts] == ["waiting", "applied"]

    await decide(engine, targets, refund.token_id, Decision(False, "bob", "no"))
    outcome = await finish(engine, run_id)
    assert (outcome.outcome, outcome.rows) == ("applied", 1)
    assert [p.outcome.outcome for p in outcome.parts] == ["rejected", "applied"]
    assert written(demo_path) == {"refunds": [], "invoice": [("paid",)]}
    assert markers(demo_path) == [(run_id, "apply part 2", 1)]
    # What a revert undoes: the written part's rows, numbered as the set's changes.
    assert outcome.written is not None and [i["index"] for i in outcome.written] == [1]
    reverted = await revert(engine, run_id)
    assert (await engine.wait_for(reverted)).status == RunStatus.WAITING
    review = review_from_steps(await engine.get_steps(reverted))
    assert (
        review is not None and not review.parts and [d.table for d in review.diffs] == ["invoices"]
    )


@pytest.mark.parametrize("apply", APPLY_MODES)
async def test_a_restart_between_the_approvals_writes_each_row_once(
    consoles: Callable[..., Any], targets: Targets, demo_path: Path, apply: ApplyMode
) -> None:
    change = replace(change_for(targets, DEMO_CHANGE_SET, f"sqlite:///{demo_path}"), apply=apply)
    async with consoles("ana") as (ana,):
        run_id, found = await waiting_set(ana, change)
        refund, paid = found.parts
        assert refund.token_id and paid.token_id
        await decide(ana, targets, refund.token_id, Decision(True, "ana"))
        if apply == "each":  # the refund is written before the engine stops

            async def refund_written() -> bool:
                run = await ana.get_run(run_id)
                return run.status == RunStatus.WAITING and bool(markers(demo_path))

            await until(ana, refund_written)
        steps = [s.name for s in await ana.get_steps(run_id)]
    async with consoles("bob") as (bob,):
        await decide(bob, targets, paid.token_id, Decision(True, "bob"))
        outcome = await finish(bob, run_id)
        assert [s.name for s in await bob.get_steps(run_id)][: len(steps)] == steps
    assert outcome.outcome == "applied" and outcome.rows == 2
    assert written(demo_path) == BOTH
    if apply == "all":
        assert markers(demo_path) == [(run_id, "apply", 2)]
    else:
        assert markers(demo_path) == [(run_id, "apply part 1", 1), (run_id, "apply part 2", 1)]


POLICY = """
[[rule]]
name = "refunds"
table = "refunds"
approvals = 2

[[rule]]
name = "paid invoices"
table = "invoices"
when = ["invoices.status == 'paid'"]
auto_approve = true
"""


async def test_each_part_is_decided_under_its_own_rule(
    consoles: Callable[..., Any], targets: Targets, demo_path: Path
) -> None:
    change = change_for(targets, DEMO_CHANGE_SET, f"sqlite:///{demo_path}")
    async with consoles("ana", "bob") as (ana, bob):
        await ana.apply_policy(POLICY)
        run_id, found = await waiting_set(ana, change)
        refund, paid = found.parts
        assert refund.review.rule is not None and refund.review.rule["name"] == "refunds"
        assert paid.review.rule is not None and paid.review.rule["name"] == "paid invoices"
        # The invoice's rule approves it: no token; the refund's needs two reviewers.
        assert paid.token_id is None and paid.status == "approved"
        assert paid.decided_by == ("policy rule 'paid invoices'",)
        assert refund.token_id is not None
        token = await ana.get_token(refund.token_id)
        assert token.requirement is not None and token.requirement.approvals == 2
        first = await decide(ana, targets, refund.token_id, Decision(True, "ana"))
        assert first.status == TokenStatus.WAITING
        with pytest.raises(DecisionRefused, match="already approved"):
            await decide(ana, targets, refund.token_id, Decision(True, "ana again"))
        now = await read_change_set(bob, run_id)
        assert now is not None and now.parts[0].decided_by == ("ana",)
        assert now.parts[0].status == "waiting" and written(demo_path) == NOTHING
        await decide(bob, targets, refund.token_id, Decision(True, "bob"))
        outcome = await finish(bob, run_id)
    assert outcome.outcome == "applied" and written(demo_path) == BOTH
    assert outcome.parts[1].outcome.reviewer == "policy rule 'paid invoices'"


async def test_a_part_is_edited_and_seen_on_its_own(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    change = change_for(targets, DEMO_CHANGE_SET, f"sqlite:///{demo_path}")
    run_id, found = await waiting_set(engine, change)
    refund, paid = found.parts
    assert refund.token_id and paid.token_id
    # What was seen is the part's diffs, not the set's nor another part's.
    with pytest.raises(DecisionRefused):
        await decide(
            engine, targets, refund.token_id, Decision(True, "ana"), seen=paid.review.diff_hash
        )
    # Edits number the part's own changes: change 0 of the refund part.
    edit = Edit(0, {"amount": "15.00"})
    await decide(engine, targets, refund.token_id, Decision(True, "ana", edits=(edit,)))
    await decide(engine, targets, paid.token_id, Decision(True, "bob"))
    outcome = await finish(engine, run_id)
    assert outcome.outcome == "applied"
    assert written(demo_path) == {"refunds": [(15, "pending")], "invoice": [("paid",)]}


async def test_a_one_part_request_is_no_change_set(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    change = change_for(targets, REFUND, f"sqlite:///{demo_path}")
    run = await engine.wait_for((await request_change(engine, change)).id)
    assert await read_change_set(engine, run.id) is None
    steps = await engine.get_steps(run.id)
    step = next(s for s in steps if s.name == "propose")
    assert "parts" not in step.result and "part" not in step.result["proposal"]["changes"][0]
    review = review_from_steps(steps)
    assert review is not None and Review.from_json(review.to_json()) == review
