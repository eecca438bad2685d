"""Reviews under a requirement (Engine.decide): N distinct approvals, who may decide, no
self-approval, escalation, the diff that was seen; checked where the decision commits. The
SQLite half identifies reviewers by the engine's actor (an OS account); the PostgreSQL half
by their database roles, with raw SQL tried against the rules (test_reviews_pg.py)."""

import json

import pytest

from hitl_desktop.engine import (
    DecisionRefused,
    Engine,
    OutputRefused,
    Requirement,
    TokenAlreadyFinished,
    TokenExpired,
    TokenStatus,
    task,
    wait,
)

SEEN = "a" * 64


@task("reviewed")
async def reviewed(ctx, payload):
    requirement = Requirement(**payload["requirement"]) if payload.get("requirement") else None
    token = await wait.create_token(timeout=payload.get("timeout", "1h"), requirement=requirement)
    result = await wait.for_token(token)
    return {"ok": result.ok, "output": result.output}


def _check(decision):
    if decision.get("comment") == "refuse me":
        raise ValueError("comments may not say that")


@task("checked", check_output=_check)
async def checked(ctx, payload):
    token = await wait.create_token(timeout="1h", requirement=Requirement(rule="checked"))
    return (await wait.for_token(token)).output


def approve(**extra):
    return {"decision": "approve", **extra}


def reject(**extra):
    return {"decision": "reject", **extra}


async def _waiting(
    engine: Engine, task_name="reviewed", timeout="1h", **requirement
) -> tuple[str, str]:
    payload = {"requirement": requirement, "timeout": timeout} if requirement else {}
    run = await engine.trigger(task_name, payload)
    waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
    assert waiting.waiting_token_id is not None
    return run.id, waiting.waiting_token_id


class Desk:
    """Engines on one SQLite file, one per OS account: the worker executes, reviewers decide."""

    def __init__(self, path, clock=None):
        self.url = f"sqlite:///{path}"
        self.clock = clock
        self.engines: list[Engine] = []

    async def engine(self, actor: str, execute: bool = False) -> Engine:
        kwargs = {} if self.clock is None else {"clock": self.clock}
        e = Engine(self.url, tasks=[reviewed, checked], actor=actor, execute=execute, **kwargs)
        await e.start()
        self.engines.append(e)
        return e

    async def close(self):
        for e in reversed(self.engines):
            await e.stop()


@pytest.fixture
async def desk(tmp_path):
    d = Desk(tmp_path / "runs.db")
    yield d
    await d.close()


async def test_two_of_two_first_approval_waits_same_reviewer_refused_second_applies(desk):
    worker = await desk.engine("svc", execute=True)
    ana, bob = await desk.engine("ana"), await desk.engine("bob")
    run_id, token_id = await _waiting(
        worker, rule="big refunds", approvals=2, approvers=["ana", "bob"], seen=SEEN
    )
    first = await ana.decide(token_id, approve(comment="fine"), seen=SEEN)
    assert first.status == TokenStatus.WAITING
    assert [(v.reviewer, v.approve) for v in first.verdicts] == [("ana", True)]
    assert first.requirement is not None and first.requirement.rule == "big refunds"
    assert first.requirement.requester == "svc"
    assert (await worker.get_run(run_id)).status == "WAITING"
    with pytest.raises(DecisionRefused, match=r"ana already approved it at .* \(1 of 2 approvals"):
        await ana.decide(token_id, approve(), seen=SEEN)
    done = await bob.decide(token_id, approve(comment="ok too"), seen=SEEN)
    assert done.status == TokenStatus.COMPLETED and done.completed_by == "bob"
    run = await worker.wait_for(run_id, ["COMPLETED"], timeout=10)
    assert run.output == {"ok": True, "output": approve(comment="ok too")}
    entries = await worker.audit_entries(run_id=run_id)
    decisions = [json.loads(e.data) for e in entries if e.kind == "Decision"]
    assert [(e.actor, e.kind) for e in entries if e.kind == "Decision"] == [
        ("ana", "Decision"),
        ("bob", "Decision"),
    ]
    assert [(d["approvals"], d["needed"], d["final"]) for d in decisions] == [
        (1, 2, False),
        (2, 2, True),
    ]
    assert {d["rule"] for d in decisions} == {"big refunds"} and decisions[0]["seen"] == SEEN
    with pytest.raises(TokenAlreadyFinished, match="decided by bob"):
        await ana.decide(token_id, reject(), seen=SEEN)
    assert (await worker.verify_audit()).broken is None


async def test_any_rejection_rejects_at_once(desk):
    worker = await desk.engine("svc", execute=True)
    ana = await desk.engine("ana")
    run_id, token_id = await _waiting(worker, approvals=3)
    token = await ana.decide(token_id, reject(comment="no"))
    assert token.status == TokenStatus.COMPLETED
    run = await worker.wait_for(run_id, ["COMPLETED"], timeout=10)
    assert run.output["output"] == reject(comment="no")


async def test_only_the_approvers_may_decide(desk):
    worker = await desk.engine("svc", execute=True)
    carol = await desk.engine("carol")
    _, token_id = await _waiting(worker, rule="finance only", approvers=["ana", "bob"])
    with pytest.raises(
        DecisionRefused,
        match="carol may not decide under rule 'finance only': it needs one of ana, bob",
    ):
        await carol.decide(token_id, reject())
    assert (await worker.get_token(token_id)).verdicts == ()


async def test_the_requester_may_not_approve_but_may_reject(desk):
    ana = await desk.engine("ana", execute=True)
    run_id, token_id = await _waiting(ana, rule="four eyes", self_approval=False)
    with pytest.raises(DecisionRefused, match="ana requested this change and rule 'four eyes'"):
        await ana.decide(token_id, approve())
    await ana.decide(token_id, reject(comment="changed my mind"))
    assert (await ana.wait_for(run_id, ["COMPLETED"], timeout=10)).output["output"]["decision"] == (
        "reject"
    )


async def test_escalation_lets_others_decide_once_overdue(tmp_path):
    now = [1_900_000_000.0]
    desk = Desk(tmp_path / "runs.db", clock=lambda: now[0])
    try:
        worker = await desk.engine("svc", execute=True)
        lead = await desk.engine("lead")
        _, token_id = await _waiting(
            worker,
            timeout="3h",
            rule="slow",
            approvers=["ana"],
            remind_after=3600.0,
            escalate_to=["lead"],
        )
        assert await worker.overdue_reviews() == []
        with pytest.raises(DecisionRefused, match=r"needs one of ana \(lead once it is overdue\)"):
            await lead.decide(token_id, approve())
        now[0] += 3601
        [overdue] = await worker.overdue_reviews()
        assert (overdue.token_id, overdue.rule, overdue.escalate_to) == (
            token_id,
            "slow",
            ("lead",),
        )
        assert (overdue.approvals, overdue.needed) == (0, 1)
        token = await lead.decide(token_id, approve())
        assert token.status == TokenStatus.COMPLETED and token.completed_by == "lead"
        assert await worker.overdue_reviews() == []
    finally:
        await desk.close()


async def test_a_decision_on_another_diff_or_with_edits_under_two_approvals_is_refused(desk):
    worker = await desk.engine("svc", execute=True)
    ana = await desk.engine("ana")
    _, token_id = await _waiting(worker, rule="two", approvals=2, seen=SEEN)
    with pytest.raises(DecisionRefused, match="decided on diff bbbbbbbbbbbb, but the change"):
        await ana.decide(token_id, approve(), seen="b" * 64)
    with pytest.raises(DecisionRefused, match="decided on no diff"):
        await ana.decide(token_id, approve())
    with pytest.raises(DecisionRefused, match="needs 2 approvals of the same change: edits are"):
        await ana.decide(token_id, approve(edits=[{"index": 0}]), seen=SEEN)
    with pytest.raises(DecisionRefused, match='"decision" is "approve" or "reject"'):
        await ana.decide(token_id, {"decision": "maybe"}, seen=SEEN)
    assert (await worker.get_token(token_id)).verdicts == ()


async def test_a_review_is_decided_not_completed(desk):
    worker = await desk.engine("svc", execute=True)
    _, token_id = await _waiting(worker, rule="r")
    with pytest.raises(DecisionRefused, match="decide it instead"):
        await worker.complete_token(token_id, approve())
    assert (await worker.get_token(token_id)).status == TokenStatus.WAITING


async def test_a_token_without_requirement_takes_one_decision_by_anyone(desk):
    worker = await desk.engine("svc", execute=True)
    run_id, token_id = await _waiting(worker)
    token = await worker.decide(token_id, approve())
    assert token.status == TokenStatus.COMPLETED and token.requirement is None
    assert (await worker.wait_for(run_id, ["COMPLETED"], timeout=10)).output["ok"] is True


async def test_the_tasks_output_check_runs_before_anything_is_recorded(desk):
    worker = await desk.engine("svc", execute=True)
    _, token_id = await _waiting(worker, "checked")
    with pytest.raises(OutputRefused, match="comments may not say that"):
        await worker.decide(token_id, approve(comment="refuse me"))
    assert (await worker.get_token(token_id)).verdicts == ()


async def test_a_decision_after_the_deadline_times_the_review_out(tmp_path):
    now = [1_900_000_000.0]
    desk = Desk(tmp_path / "runs.db", clock=lambda: now[0])
    try:
        worker = await desk.engine("svc", execute=True)
        run_id, token_id = await _waiting(worker, rule="r")
        now[0] += 7200
        with pytest.raises(TokenExpired):
            await worker.decide(token_id, approve())
        run = await worker.wait_for(run_id, ["COMPLETED"], timeout=10)
        assert run.output["ok"] is False
    finally:
        await desk.close()


async def test_the_policy_versions_are_kept_and_audited(store_url):
    async with Engine(store_url, actor="ana") as engine:
        assert await engine.current_policy() is None
        first = await engine.apply_policy('[[rule]]\nname = "a"\n')
        second = await engine.apply_policy('[[rule]]\nname = "b"\n')
        assert (first.version, second.version) == (1, 2)
        current = await engine.current_policy()
        assert current == second and current.text == '[[rule]]\nname = "b"\n'
        assert current.applied_by == engine.actor and len(current.sha256) == 64
        await engine.apply_policy("")
        assert await engine.current_policy() is None
        entries = [e for e in await engine.audit_entries() if e.kind == "PolicyApplied"]
        assert [json.loads(e.data)["version"] for e in entries] == [1, 2, 3]
        assert json.loads(entries[2].data)["empty"] is True
        assert (await engine.verify_audit()).broken is None


async def test_waiting_for_me_lists_what_i_may_still_decide(desk):
    worker = await desk.engine("svc", execute=True)
    ana, bob, carol = [await desk.engine(n) for n in ("ana", "bob", "carol")]
    _, anyone = await _waiting(worker)
    _, two = await _waiting(worker, rule="two", approvals=2, approvers=["ana", "bob"])
    _, mine = await _waiting(ana, rule="not mine", self_approval=False)
    assert set(await ana.waiting_for_me()) == {anyone, two}
    assert set(await bob.waiting_for_me()) == {anyone, two, mine}
    assert set(await carol.waiting_for_me()) == {anyone, mine}
    await ana.decide(two, approve())
    assert set(await ana.waiting_for_me()) == {anyone}  # decided by me: not mine any more
    assert two in await bob.waiting_for_me()
