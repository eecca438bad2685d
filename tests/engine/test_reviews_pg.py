"""Reviews on a team store: reviewers are database roles with docs/team.md's grants, and the
requirement is enforced by the store's own function, whatever a client sends: two reviewer
roles for a 2-of-2 rule, no self-approval, escalation by the server's clock, and raw SQL tried
against every rule and refused."""

import asyncio
import json
import uuid

import pytest
import sqlalchemy as sa

from hitl_desktop.engine import (
    DecisionRefused,
    Engine,
    Requirement,
    TokenAlreadyFinished,
    TokenStatus,
    task,
    wait,
)
from tests import pg
from tests.engine import team_roles

SEEN = "c" * 64
MEMBERS = {
    "ana": ["hitl_reviewer", "finance"],
    "bob": ["hitl_reviewer", "finance"],
    "mallory": ["hitl_reviewer"],
    "lead": ["hitl_reviewer"],
    "worker1": ["hitl_worker"],
    "root": ["hitl_admin"],
}


@task("reviewed")
async def reviewed(ctx, payload):
    requirement = Requirement(**payload["requirement"])
    token = await wait.create_token(timeout=payload.get("timeout", "1h"), requirement=requirement)
    result = await wait.for_token(token)
    return {"ok": result.ok, "output": result.output}


class Team:
    def __init__(self, url: str, suffix: str) -> None:
        self.url, self.suffix = url, suffix
        self.engines: list[Engine] = []

    def role(self, name: str) -> str:
        return f"{name}_{self.suffix}"

    def url_of(self, name: str) -> str:
        return team_roles.as_role(self.url, self.role(name))

    async def engine(self, name: str, execute: bool = False) -> Engine:
        e = Engine(self.url_of(name), tasks=[reviewed], migrate=False, execute=execute)
        await e.start()
        self.engines.append(e)
        return e

    def raw(self, name: str) -> sa.Engine:
        return sa.create_engine(self.url_of(name).replace("postgresql://", "postgresql+psycopg://"))

    async def close(self) -> None:
        for e in reversed(self.engines):
            await e.stop()


@pytest.fixture
async def team():
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_rules")
    suffix = uuid.uuid4().hex[:8]
    owner = Engine(url)  # the owner migrates the store once
    await owner.open()
    await owner.stop()
    team_roles.grant(url, suffix, MEMBERS)
    t = Team(url, suffix)
    try:
        yield t
    finally:
        await t.close()
        pg.drop_database(name)
        team_roles.drop(url, suffix, MEMBERS)


async def _waiting(team: Team, requester: Engine, worker: Engine, **requirement) -> tuple[str, str]:
    timeout = requirement.pop("timeout", "1h")
    run = await requester.trigger("reviewed", {"requirement": requirement, "timeout": timeout})
    waiting = await worker.wait_for(run.id, ["WAITING"], timeout=20)
    assert waiting.waiting_token_id is not None
    return run.id, waiting.waiting_token_id


def approve(**extra):
    return {"decision": "approve", **extra}


async def test_two_of_two_by_two_reviewer_roles(team):
    worker = await team.engine("worker1", execute=True)
    mallory, ana, bob = [await team.engine(n) for n in ("mallory", "ana", "bob")]
    finance = team.role("finance")
    run_id, token_id = await _waiting(
        team, mallory, worker, rule="big", approvals=2, approvers=[finance], seen=SEEN
    )
    first = await ana.decide(token_id, approve(), seen=SEEN)
    assert first.status == TokenStatus.WAITING
    assert [v.reviewer for v in first.verdicts] == [team.role("ana")]
    assert first.requirement.requester == team.role("mallory")
    with pytest.raises(DecisionRefused, match=r"already approved it at .* \(1 of 2 approvals"):
        await ana.decide(token_id, approve(), seen=SEEN)
    with pytest.raises(
        DecisionRefused, match=f"may not decide under rule 'big': it needs one of {finance}"
    ):
        await mallory.decide(token_id, approve(), seen=SEEN)
    done = await bob.decide(token_id, approve(comment="second"), seen=SEEN)
    assert done.status == TokenStatus.COMPLETED and done.completed_by == team.role("bob")
    run = await worker.wait_for(run_id, ["COMPLETED"], timeout=20)
    assert run.output == {"ok": True, "output": approve(comment="second")}
    assert run.created_by == team.role("mallory")
    with pytest.raises(TokenAlreadyFinished, match=f"decided by {team.role('bob')}"):
        await ana.decide(token_id, approve(), seen=SEEN)
    entries = [e for e in await worker.audit_entries(run_id=run_id) if e.kind == "Decision"]
    assert [e.actor for e in entries] == [team.role("ana"), team.role("bob")]
    assert (await worker.verify_audit()).broken is None


async def test_the_requester_may_not_approve_their_own_change(team):
    worker = await team.engine("worker1", execute=True)
    ana, bob = await team.engine("ana"), await team.engine("bob")
    run_id, token_id = await _waiting(team, ana, worker, rule="four eyes", self_approval=False)
    with pytest.raises(DecisionRefused, match="requested this change and rule 'four eyes'"):
        await ana.decide(token_id, approve())
    await bob.decide(token_id, approve())
    assert (await worker.wait_for(run_id, ["COMPLETED"], timeout=20)).output["ok"] is True


async def test_escalation_by_the_servers_clock(team):
    worker = await team.engine("worker1", execute=True)
    lead = await team.engine("lead")
    _, token_id = await _waiting(
        team,
        worker,
        worker,
        rule="slow",
        approvers=[team.role("finance")],
        remind_after=1.0,
        escalate_to=[team.role("lead")],
    )
    with pytest.raises(DecisionRefused, match="once it is overdue"):
        await lead.decide(token_id, approve())
    for _ in range(100):  # bounded: 10 s
        if await worker.overdue_reviews():
            break
        await asyncio.sleep(0.1)
    [overdue] = await worker.overdue_reviews()
    assert overdue.token_id == token_id
    await asyncio.sleep(0.2)  # the server's clock, not ours, decides: leave it a margin
    token = await lead.decide(token_id, approve())
    assert token.status == TokenStatus.COMPLETED and token.completed_by == team.role("lead")


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (
            "UPDATE hitl_tokens SET status = 'COMPLETED', output = '{\"decision\":\"approve\"}' "
            "WHERE id = :token",
            "permission denied",
        ),
        ("UPDATE hitl_requirements SET approvals = 1, approvers = '[]'", "permission denied"),
        ("DELETE FROM hitl_requirements", "permission denied"),
        (
            "INSERT INTO hitl_verdicts (token_id, reviewer, approve, at) "
            "VALUES (:token, 'bob', 1, 0)",
            "permission denied",
        ),
        ("UPDATE hitl_steps SET result = '{}'", "permission denied"),
        ("UPDATE hitl_runs SET status = 'QUEUED'", "permission denied"),
        (
            "INSERT INTO hitl_policies (text, sha256, applied_at, applied_by) "
            "VALUES ('', '', 0, '')",
            "permission denied",
        ),
        (
            "SELECT * FROM hitl_decide(:token, '{\"decision\":\"approve\"}', :seen, 'x')",
            "may not decide under rule 'finance only'",
        ),
        (
            "SELECT * FROM hitl_decide(:token, '[\"approve\"]', :seen, 'x')",
            '"decision" is "approve" or "reject"',
        ),
    ],
)
async def test_raw_sql_as_a_reviewer_cannot_decide_against_the_rule(team, statement, error):
    worker = await team.engine("worker1", execute=True)
    run_id, token_id = await _waiting(
        team, worker, worker, rule="finance only", approvers=[team.role("finance")], seen=SEEN
    )
    db = team.raw("mallory")
    try:
        with pytest.raises(sa.exc.DBAPIError, match=error), db.begin() as conn:
            conn.execute(sa.text(statement), {"token": token_id, "seen": SEEN})
    finally:
        db.dispose()
    token = await worker.get_token(token_id)
    assert token.status == TokenStatus.WAITING and token.verdicts == ()
    assert token.requirement.approvers == (team.role("finance"),)
    assert (await worker.get_run(run_id)).status == "WAITING"


async def test_a_worker_role_runs_everything_and_an_admin_applies_the_policy(team):
    root = Engine(team.url_of("root"), migrate=False)
    try:
        record = await root.apply_policy('[[rule]]\nname = "all"\n')
        assert record.applied_by == team.role("root")
    finally:
        await root.stop()
    worker = await team.engine("worker1", execute=True)
    ana = await team.engine("ana")
    with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
        await ana.apply_policy("")
    run_id, token_id = await _waiting(team, worker, worker, rule="r")
    await ana.decide(token_id, approve())
    assert (await worker.wait_for(run_id, ["COMPLETED"], timeout=20)).output["ok"] is True
    db = sa.create_engine(team.url.replace("postgresql://", "postgresql+psycopg://"))
    try:  # not even the owner rewrites the policy's history
        for statement in ("DELETE FROM hitl_policies", "UPDATE hitl_policies SET text = ''"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.begin() as conn:
                conn.execute(sa.text(statement))
    finally:
        db.dispose()
    assert (await worker.current_policy()).version == 1


async def test_waiting_for_me_follows_role_membership(team):
    worker = await team.engine("worker1", execute=True)
    ana, mallory = await team.engine("ana"), await team.engine("mallory")
    _, token_id = await _waiting(team, worker, worker, rule="f", approvers=[team.role("finance")])
    assert token_id in await ana.waiting_for_me()  # a member of finance
    assert token_id not in await mallory.waiting_for_me()


async def test_a_reviewer_requests_a_revert_and_cannot_put_other_words_in_the_trail(team):
    worker = await team.engine("worker1", execute=True)
    ana, mallory = await team.engine("ana"), await team.engine("mallory")
    run_id, token_id = await _waiting(team, worker, worker, rule="r")
    await ana.decide(token_id, approve())
    await worker.wait_for(run_id, ["COMPLETED"], timeout=20)
    # A revert's request: a new run, and its entry about the run it reverts, as the reviewer.
    again = {"requirement": {"rule": "r"}}
    new = await ana.trigger("reviewed", again, audit=("RevertRequested", run_id))
    noted = [e for e in await worker.audit_entries(run_id=run_id) if e.kind == "RevertRequested"]
    assert [(e.actor, json.loads(e.data or "")) for e in noted] == [
        (team.role("ana"), {"run": new.id, "task": "reviewed"})
    ]
    mine = await mallory.trigger("reviewed", again)
    refused = {
        "SELECT hitl_note_run(:mine, 'Decision', :about)": "cannot be noted with a Decision",
        "SELECT hitl_note_run(:new, 'RevertRequested', :about)": "was not triggered by",
        "SELECT hitl_note_run(:mine, 'RevertRequested', 'run_none')": "there is no run run_none",
        "INSERT INTO hitl_audit (at, actor, kind, prev_hash, hash) VALUES ('', '', 'x', '', '')": (
            "permission denied"
        ),
    }
    db = team.raw("mallory")
    try:
        for statement, error in refused.items():
            with pytest.raises(sa.exc.DBAPIError, match=error), db.begin() as conn:
                conn.execute(sa.text(statement), {"mine": mine.id, "new": new.id, "about": run_id})
    finally:
        db.dispose()
    db = team.raw("ana")
    try:  # once per run
        with pytest.raises(sa.exc.DBAPIError, match="already noted"), db.begin() as conn:
            conn.execute(
                sa.text("SELECT hitl_note_run(:new, 'RevertRequested', :about)"),
                {"new": new.id, "about": run_id},
            )
    finally:
        db.dispose()
    kinds = [e.kind for e in await worker.audit_entries()]
    assert kinds.count("RevertRequested") == 1
    assert (await worker.verify_audit()).broken is None
    with pytest.raises(ValueError, match="cannot be triggered with a 'Decision' audit entry"):
        await ana.trigger("reviewed", again, audit=("Decision", run_id))
