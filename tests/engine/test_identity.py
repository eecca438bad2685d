"""Who triggered a run and who completed a token are recorded by the store: the session's
database role on PostgreSQL (set by the server whatever a client writes), the OS account on
SQLite."""

import asyncio
import getpass
import uuid

import pytest
import sqlalchemy as sa

from hitl_desktop.engine import Engine, TokenAlreadyFinished, task, wait
from hitl_desktop.engine.store.schema import SCHEMA_REVISION
from tests import pg


@task("decided")
async def decided(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


async def _waiting(engine: Engine) -> tuple[str, str]:
    run = await engine.trigger("decided", 1)
    waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
    assert waiting.waiting_token_id is not None
    return run.id, waiting.waiting_token_id


async def test_a_sqlite_store_records_the_os_account(tmp_path):
    async with Engine(f"sqlite:///{tmp_path / 'runs.db'}", tasks=[decided]) as engine:
        assert engine.actor == getpass.getuser()
        run_id, token_id = await _waiting(engine)
        assert (await engine.get_run(run_id)).created_by == getpass.getuser()
        token = await engine.complete_token(token_id, "yes")
        assert token.completed_by == getpass.getuser()
        assert (await engine.get_token(token_id)).completed_by == getpass.getuser()


async def test_a_second_decision_names_who_decided_first_and_changes_nothing(store_url):
    async with Engine(store_url, tasks=[decided], actor="ana") as engine:
        _, token_id = await _waiting(engine)
        await engine.complete_token(token_id, "yes")
        first = await engine.get_token(token_id)
        with pytest.raises(TokenAlreadyFinished, match=r"already COMPLETED \(decided by \S+ at "):
            await engine.complete_token(token_id, "no")
        try:
            await engine.complete_token(token_id, "no")
        except TokenAlreadyFinished as refused:
            assert refused.by == first.completed_by == engine.actor
            assert first.completed_at is not None
            assert abs(refused.at - first.completed_at.timestamp()) < 1e-3  # type: ignore[operator]
        assert (await engine.get_token(token_id)).output == "yes"


@pytest.fixture
def team_store():
    """A PostgreSQL store made by its owner, and a reviewer role `ana_…` that may use it."""
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_who")
    role = f"ana_{uuid.uuid4().hex[:8]}"
    pg.admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield url, role
    finally:
        pg.drop_database(name)
        pg.admin(f'DROP ROLE "{role}"')
        pg.admin(f'DROP ROLE IF EXISTS "{role}_team"')


def _as(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@")


def _grant(url: str, role: str) -> None:
    """docs/team.md's grants, as written there: a team role, and the reviewer in it."""
    team = f"{role}_team"
    db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with db.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{team}" NOLOGIN'))
        conn.execute(
            sa.text(
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{team}"'
            )
        )
        conn.execute(sa.text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{team}"'))
        conn.execute(sa.text(f'GRANT "{team}" TO "{role}"'))
    db.dispose()


async def test_postgresql_records_the_reviewers_own_role(team_store):
    url, role = team_store
    async with Engine(url, tasks=[decided]) as worker:
        assert worker.actor == "postgres"
        run_id, token_id = await _waiting(worker)
        _grant(url, role)
        # The reviewer's console executes nothing; it says it is "mallory": the server knows.
        reviewer = Engine(_as(url, role), tasks=[decided], actor="mallory")
        try:
            await reviewer.open()
            assert reviewer.actor == role
            token = await reviewer.complete_token(token_id, "yes")
            assert token.completed_by == role
        finally:
            await reviewer.stop()
        done = await worker.wait_for(run_id, ["COMPLETED"], timeout=10)
        assert done.created_by == "postgres"


async def test_postgresql_keeps_who_decided_whatever_a_client_writes(team_store):
    url, role = team_store
    async with Engine(url, tasks=[decided]) as worker:
        run_id, token_id = await _waiting(worker)
        await worker.complete_token(token_id, "yes")
        await worker.wait_for(run_id, ["COMPLETED"], timeout=10)
    _grant(url, role)
    db = sa.create_engine(_as(url, role).replace("postgresql://", "postgresql+psycopg://"))
    try:
        with db.begin() as conn:  # raw SQL as the reviewer: rewrite who decided and who asked
            conn.execute(
                sa.text("UPDATE hitl_tokens SET completed_by = 'ceo' WHERE id = :id"),
                {"id": token_id},
            )
            conn.execute(
                sa.text("UPDATE hitl_runs SET created_by = 'ceo' WHERE id = :id"), {"id": run_id}
            )
        with db.connect() as conn:
            who = conn.execute(
                sa.text("SELECT completed_by FROM hitl_tokens WHERE id = :id"), {"id": token_id}
            ).scalar_one()
            asked = conn.execute(
                sa.text("SELECT created_by FROM hitl_runs WHERE id = :id"), {"id": run_id}
            ).scalar_one()
    finally:
        db.dispose()
    assert (who, asked) == ("postgres", "postgres")


async def test_a_store_opened_without_migrating_names_the_command_that_migrates_it(store_url):
    from hitl_desktop.engine import StoreNotUsable, migrate_store

    console = Engine(store_url, migrate=False)
    with pytest.raises(StoreNotUsable, match=r"no hitl-desktop schema yet: run `hitl migrate"):
        await console.open()
    await console.stop()
    assert await migrate_store(store_url) == SCHEMA_REVISION
    console = Engine(store_url, migrate=False)
    try:
        await console.open()
        assert await console.list_runs() == []
    finally:
        await console.stop()


async def test_a_review_only_engine_executes_nothing_and_sees_everything(store_url):
    """A review-only console (execute=False) and a worker on one store: the console's
    trigger and decision are executed by the worker, and the console hears of each step."""
    worker = Engine(store_url, tasks=[decided], actor="worker")
    console = Engine(store_url, tasks=[decided], actor="ana", execute=False)
    await worker.start()
    await console.start()
    try:
        async with console.events() as seen:
            run = await console.trigger("decided", 1)
            assert run.status == "QUEUED"
            waiting = await console.wait_for(run.id, ["WAITING"], timeout=10)
            assert console._runner.running == {}  # never executed here
            assert waiting.waiting_token_id is not None
            token = await console.complete_token(waiting.waiting_token_id, "yes")
            assert token.completed_by == console.actor
            done = await console.wait_for(run.id, ["COMPLETED"], timeout=10)
            assert done.output == "yes"
            kinds = []
            async with asyncio.timeout(10):
                async for event in seen:
                    if event.run_id == run.id:
                        kinds.append(type(event).__name__)
                    if kinds and kinds[-1] == "RunCompleted":
                        break
        assert kinds[0] == "RunTriggered" and "RunPaused" in kinds and "RunResumed" in kinds
    finally:
        await console.stop()
        await worker.stop()
