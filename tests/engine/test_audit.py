"""The audit trail: entries written with the changes they record, hash-chained, verified."""

import asyncio
import sqlite3

import pytest
import sqlalchemy as sa

from hitl_desktop.engine import Engine, task, wait
from tests import pg


@task("audited", audit=True)
async def audited(ctx, payload):
    token = await wait.create_token(timeout=payload.get("timeout", "1h"))
    return (await wait.for_token(token)).output


@task("unaudited")
async def unaudited(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


async def _decide(engine: Engine, task_name: str, output) -> str:
    run = await engine.trigger(task_name, {})
    waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
    assert waiting.waiting_token_id is not None
    await engine.complete_token(waiting.waiting_token_id, output)
    await engine.wait_for(run.id, ["COMPLETED"], timeout=10)
    return run.id


async def test_a_decision_and_its_runs_end_are_entries_in_an_intact_chain(store_url):
    async with Engine(store_url, tasks=[audited, unaudited], actor="ana") as engine:
        run_id = await _decide(engine, "audited", {"approve": True, "comment": "ok"})
        await _decide(engine, "unaudited", {"approve": True})  # leaves no entry
        entries = await engine.audit_entries()
        assert [(e.kind, e.run_id) for e in entries] == [
            ("TokenCompleted", run_id),
            ("RunCompleted", run_id),
        ]
        assert entries[0].actor == engine.actor
        assert entries[0].data == '{"approve":true,"comment":"ok"}'
        assert entries[1].prev_hash == entries[0].hash
        assert (await engine.verify_audit()).broken is None
        other = await _decide(engine, "audited", {"approve": False})
        assert [e.kind for e in await engine.audit_entries(run_id=other)] == [
            "TokenCompleted",
            "RunCompleted",
        ]
        assert await engine.audit_entries(run_id=run_id) == entries


async def test_expiry_and_cancel_are_entries(store_url):
    async with Engine(store_url, tasks=[audited]) as engine:
        expiring = await engine.trigger("audited", {"timeout": 0.2})
        await engine.wait_for(expiring.id, ["COMPLETED"], timeout=10)
        canceled = await engine.trigger("audited", {})
        await engine.wait_for(canceled.id, ["WAITING"], timeout=10)
        await engine.cancel(canceled.id, "not needed")
        kinds = [(e.kind, e.run_id) for e in await engine.audit_entries()]
        assert kinds == [
            ("TokenTimedOut", expiring.id),
            ("RunCompleted", expiring.id),
            ("RunCanceled", canceled.id),
        ]
        assert (await engine.verify_audit()).broken is None


async def _three_entries(path) -> list:
    async with Engine(f"sqlite:///{path}", tasks=[audited]) as engine:
        await _decide(engine, "audited", {"approve": True})
        await _decide(engine, "audited", {"approve": False})
        return await engine.audit_entries()


async def _verify(path):
    engine = Engine(f"sqlite:///{path}")
    try:
        return (await engine.verify_audit()).broken
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("tamper", "first_bad", "reason"),
    [
        ("UPDATE hitl_audit SET data = '{\"approve\":true}' WHERE id = 3", 3, "changed"),
        ("UPDATE hitl_audit SET actor = 'ceo' WHERE id = 1", 1, "changed"),
        ("DELETE FROM hitl_audit WHERE id = 2", 3, "removed or inserted"),
        (
            "INSERT INTO hitl_audit (id, at, actor, kind, data, prev_hash, hash) "
            "SELECT 5, at, actor, kind, data, prev_hash, hash FROM hitl_audit WHERE id = 2",
            5,
            "removed or inserted",
        ),
    ],
)
async def test_a_changed_removed_or_inserted_entry_is_named(tmp_path, tamper, first_bad, reason):
    path = tmp_path / "runs.db"
    entries = await _three_entries(path)
    assert len(entries) == 4 and await _verify(path) is None
    with sqlite3.connect(path) as raw:
        raw.execute(tamper)
    broken = await _verify(path)
    assert broken is not None and broken.entry_id == first_bad and reason in broken.reason


@pytest.fixture
def pg_store():
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_audit")
    try:
        yield url
    finally:
        pg.drop_database(name)


async def test_postgresql_refuses_to_change_the_trail_and_the_server_tells_who_and_when(pg_store):
    async with Engine(pg_store, tasks=[audited], actor="mallory") as engine:
        await _decide(engine, "audited", {"approve": True})
    db = sa.create_engine(pg_store.replace("postgresql://", "postgresql+psycopg://"))
    try:
        for statement in (
            "UPDATE hitl_audit SET actor = 'ceo'",
            "DELETE FROM hitl_audit",
            "TRUNCATE hitl_audit",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.begin() as conn:
                conn.execute(sa.text(statement))
        with db.begin() as conn:  # a client inserting its own who, when and hash
            conn.execute(
                sa.text(
                    "INSERT INTO hitl_audit (at, actor, kind, prev_hash, hash) "
                    "VALUES ('1999-01-01', 'ceo', 'Forged', 'x', 'y')"
                )
            )
            forged = conn.execute(
                sa.text("SELECT at, actor FROM hitl_audit WHERE kind = 'Forged'")
            ).one()
    finally:
        db.dispose()
    assert forged.actor == "postgres" and forged.at.startswith("20")
    engine = Engine(pg_store)
    try:
        assert (await engine.verify_audit()).broken is None  # chained by the server all the same
        assert [e.actor for e in await engine.audit_entries()] == ["postgres"] * 3
    finally:
        await engine.stop()


async def test_concurrent_decisions_from_two_processes_chain_without_a_fork(pg_store):
    n = 40
    async with Engine(pg_store, tasks=[audited]) as worker:
        runs = [await worker.trigger("audited", {}) for _ in range(n)]
        tokens = []
        for run in runs:
            waiting = await worker.wait_for(run.id, ["WAITING"], timeout=20)
            tokens.append(waiting.waiting_token_id)
        a, b = Engine(pg_store, tasks=[audited]), Engine(pg_store, tasks=[audited])
        await a.open()
        await b.open()
        try:
            await asyncio.gather(
                *(
                    (a if i % 2 else b).complete_token(token_id, i)
                    for i, token_id in enumerate(tokens)
                )
            )
        finally:
            await a.stop()
            await b.stop()
        for run in runs:
            await worker.wait_for(run.id, ["COMPLETED"], timeout=20)
        entries = await worker.audit_entries(limit=10 * n)
        assert len(entries) == 2 * n
        assert len({e.prev_hash for e in entries}) == 2 * n  # no two entries share a parent
        assert (await worker.verify_audit()).broken is None


async def test_a_run_is_triggered_only_with_an_entry_a_trigger_may_write(tmp_path):
    async with Engine(f"sqlite:///{tmp_path / 'runs.db'}", tasks=[audited]) as engine:
        about = await _decide(engine, "audited", {"approve": True})
        with pytest.raises(ValueError, match="cannot be triggered with a 'Decision' audit entry"):
            await engine.trigger("audited", {}, audit=("Decision", about))
        new = await engine.trigger("audited", {}, audit=("RevertRequested", about))
        noted = [e for e in await engine.audit_entries(run_id=about) if e.kind.startswith("Revert")]
        assert [(e.kind, e.data) for e in noted] == [
            ("RevertRequested", f'{{"run":"{new.id}","task":"audited"}}')
        ]
        assert len(await engine.list_runs()) == 2  # the refused trigger wrote nothing
        assert (await engine.verify_audit()).broken is None
