"""The store: migrations at start, the fast path when current, grouped commits."""

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.engine import Engine, RunStatus, task, wait
from hitl_desktop.engine.store.schema import SCHEMA_REVISION


@task("store-roundtrip")
async def roundtrip(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


async def test_start_migrates_a_new_store(tmp_path: Path):
    path = tmp_path / "new.db"
    engine = Engine(f"sqlite:///{path}")
    await engine.start()
    await engine.stop()
    db = sqlite3.connect(path)
    assert db.execute("select version_num from alembic_version").fetchall() == [(SCHEMA_REVISION,)]
    assert db.execute("pragma journal_mode").fetchone() == ("wal",)
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert {"hitl_runs", "hitl_steps", "hitl_tokens", "hitl_events", "hitl_engines"} <= tables


def test_new_and_current_stores_open_without_importing_alembic(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    probe = (
        "import asyncio, sys\n"
        "from hitl_desktop.engine import Engine\n"
        f"e = Engine({url!r})\n"
        "asyncio.run(e.open()); asyncio.run(e.stop())\n"
        "print('alembic' in sys.modules)\n"
    )
    for _ in ("new", "current"):
        run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "False"
    with sqlite3.connect(tmp_path / "runs.db") as db:
        assert db.execute("select version_num from alembic_version").fetchall() == [
            (SCHEMA_REVISION,)
        ]


async def test_a_new_store_is_made_as_the_migrations_would_make_it(store_url: str, tmp_path: Path):
    """A new store is created at the head from schema.py and stamped, not migrated revision by
    revision: its tables, columns and indexes must be those the migrations build, or a later
    migration would meet a schema it was not written for."""
    import sqlalchemy as sa

    from hitl_desktop.engine.store import migrate
    from tests import pg

    engine = Engine(store_url)
    await engine.open()
    await engine.stop()
    if store_url.startswith("sqlite"):
        name, migrated = None, f"sqlite:///{tmp_path / 'migrated.db'}"
    else:
        name, migrated = pg.create_database("hitl_migrated")
    try:
        alembic_made = sa.create_engine(_sync_url(migrated))
        with alembic_made.begin() as conn:
            migrate.upgrade_with_alembic(conn)
        alembic_made.dispose()
        made, expected = _shape(_sync_url(store_url)), _shape(_sync_url(migrated))
        assert set(made) == set(expected)
        for table in expected:
            assert made[table] == expected[table], table
    finally:
        if name is not None:
            pg.drop_database(name)


def _sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _shape(url: str) -> dict[str, object]:
    """Tables, columns, keys and indexes (with their conditions), as the database reports them."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        extras: dict[str, list[str]] = {}  # SQLite: what the inspector leaves out
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                rows = conn.execute(sa.text("select type, tbl_name, sql from sqlite_master"))
                for kind, table, sql in rows:
                    if kind == "table" and "WITHOUT ROWID" in (sql or ""):
                        extras.setdefault(table, []).append("WITHOUT ROWID")
                    elif kind == "index" and sql:  # the partial indexes' conditions
                        extras.setdefault(table, []).append(" ".join(sql.split()))

        def options(index: Any) -> list[tuple[str, str]]:
            given = index.get("dialect_options") or {}
            return sorted((k, " ".join(str(v).split())) for k, v in given.items())

        return {
            table: (
                [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ],
                inspector.get_pk_constraint(table)["constrained_columns"],
                sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]), options(i))
                    for i in inspector.get_indexes(table)
                ),
                sorted(extras.get(table, [])),
            )
            for table in inspector.get_table_names()
        }
    finally:
        engine.dispose()


async def _open_and_close(url: str) -> None:
    engine = Engine(url)
    await engine.open()
    await engine.stop()


async def test_two_engines_opening_a_new_store_at_once_migrate_it_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engines = [Engine(url) for _ in range(3)]
    await asyncio.gather(*(e.open() for e in engines))
    for e in engines:
        await e.stop()
    db = sqlite3.connect(tmp_path / "runs.db")
    assert db.execute("select count(*) from alembic_version").fetchone() == (1,)


async def test_concurrent_runs_share_commits_without_sharing_failures(engine: Engine):
    runs = await asyncio.gather(*(engine.trigger("store-roundtrip", {"n": n}) for n in range(64)))
    tokens = [(await engine.wait_for(r.id)).waiting_token_id for r in runs]
    # Half of the completions are duplicates: they fail inside the same grouped transactions
    # as the ones that succeed, and must not take those down with them.
    results = await asyncio.gather(
        *(engine.complete_token(t, {"n": i}) for i, t in enumerate(tokens)),
        *(engine.complete_token(t, {"n": -1}) for t in tokens),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 64
    for i, run in enumerate(runs):
        done = await engine.wait_for(run.id, [RunStatus.COMPLETED])
        assert done.output == {"n": i}


@pytest.mark.parametrize("doorbell", ["eventfd", "socketpair"])
async def test_finished_transactions_come_back_through_either_doorbell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doorbell: str
):
    # Linux wakes the loop through an eventfd; other systems through a socket pair.
    if doorbell == "eventfd" and not hasattr(os, "eventfd"):
        pytest.skip("this system has no eventfd")
    if doorbell == "socketpair":
        monkeypatch.delattr(os, "eventfd", raising=False)
    async with Engine(f"sqlite:///{tmp_path / 'runs.db'}") as engine:
        runs = await asyncio.gather(
            *(engine.trigger("store-roundtrip", {"n": n}) for n in range(16))
        )
        tokens = [(await engine.wait_for(r.id)).waiting_token_id for r in runs]
        await asyncio.gather(*(engine.complete_token(t, {"n": i}) for i, t in enumerate(tokens)))
        done = [await engine.wait_for(r.id, [RunStatus.COMPLETED]) for r in runs]
        bell = engine.db.executor._bells[asyncio.get_running_loop()]  # type: ignore[attr-defined]
        rings_on_a_socket = stat.S_ISSOCK(os.fstat(bell._fileno).st_mode)
    assert [d.output for d in done] == [{"n": i} for i in range(16)]
    assert rings_on_a_socket == (doorbell == "socketpair")


# ---------------------------------------------------------------- upgrading an existing store

quotes: list[int] = []


def quote(amount: int) -> dict[str, int]:
    quotes.append(amount)
    return {"amount": amount}


@task("store-upgrade")
async def upgrade_task(ctx, payload):
    q = await ctx.step("quote", quote, payload["amount"])
    token = await wait.create_token(timeout="1h")
    result = await wait.for_token(token)
    return {"quote": q, "decision": result.output}


def _store_at_0001(path: Path) -> None:
    """A store created by the first release: Alembic's 0001 only."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from hitl_desktop.engine.store import migrate

    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(migrate.MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
    finally:
        engine.dispose()


def _fill_0001(path: Path, now: float) -> None:
    """What 0001 held: a run waiting on its token (a step done), a second run waiting on the
    same token (shared through its idempotency key), a finished keyed run."""
    info = json.dumps(
        {"id": "tok_w", "tags": ["refund"], "created_at": now, "expires_at": now + 3600}
    )
    run = (
        "INSERT INTO hitl_runs (id, task, status, payload, output, tags, idempotency_key,"
        " waiting_token_id, owner, recoveries, created_at, updated_at, finished_at)"
        " VALUES (?, 'store-upgrade', ?, ?, ?, '[]', ?, ?, NULL, 0, ?, ?, ?)"
    )
    step = (
        "INSERT INTO hitl_steps (run_id, position, kind, name, ok, result, error, attempts,"
        " started_at, finished_at) VALUES (?, ?, ?, ?, 1, ?, NULL, 1, ?, ?)"
    )
    with sqlite3.connect(path) as db:
        db.execute(run, ("run_w", "WAITING", '{"amount":7}', None, None, "tok_w", now, now, None))
        db.execute(
            run,
            ("run_c", "COMPLETED", '{"amount":1}', '{"ok":1}', "key-1", None, now - 1, now, now),
        )
        db.execute(run, ("run_s", "WAITING", '{"amount":8}', None, None, "tok_w", now, now, None))
        for run_id, amount in (("run_w", 7), ("run_s", 8)):
            db.execute(step, (run_id, 0, "step", "quote", f'{{"amount":{amount}}}', now, now))
            db.execute(step, (run_id, 1, "token", "create_token", info, now, now))
        db.execute(
            "INSERT INTO hitl_tokens (id, run_id, status, tags, created_at, expires_at)"
            " VALUES ('tok_w', 'run_w', 'WAITING', '[\"refund\"]', ?, ?)",
            (now, now + 3600),
        )
        db.execute("INSERT INTO hitl_token_tags (tag, token_id) VALUES ('refund', 'tok_w')")


async def test_a_0001_store_is_upgraded_and_its_runs_go_on(tmp_path: Path):
    path = tmp_path / "old.db"
    _store_at_0001(path)
    _fill_0001(path, time.time())
    quotes.clear()

    engine = Engine(f"sqlite:///{path}")
    await engine.start()
    try:
        db = sqlite3.connect(path)
        assert db.execute("select version_num from alembic_version").fetchall() == [
            (SCHEMA_REVISION,)
        ]
        ddl = dict(db.execute("select name, sql from sqlite_master where sql is not null"))
        assert "WITHOUT ROWID" in ddl["hitl_steps"]
        assert "WHERE idempotency_key IS NOT NULL" in ddl["uq_hitl_runs_idempotency_key"]
        assert "ix_hitl_runs_status_created" not in ddl
        assert "UNIQUE" not in ddl["hitl_runs"] and "UNIQUE" not in ddl["hitl_tokens"]
        assert "WITHOUT ROWID" in ddl["hitl_tokens"]
        assert "ix_hitl_runs_waiting_token" not in ddl
        # The wait on another run's token is listed; the wait on its own token needs no row.
        assert db.execute("select token_id, run_id from hitl_waits").fetchall() == [
            ("tok_w", "run_s")
        ]
        db.close()

        # The rows came through: the waiting run, its history and token, the keyed run.
        waiting = await engine.get_run("run_w")
        assert waiting.status == RunStatus.WAITING and waiting.waiting_token_id == "tok_w"
        assert [s.name for s in await engine.get_steps("run_w")] == ["quote", "create_token"]
        assert [t.id for t in await engine.list_tokens(status="WAITING", tags=["refund"])] == [
            "tok_w"
        ]
        assert {r.id for r in await engine.list_runs(RunStatus.WAITING)} == {"run_w", "run_s"}
        cached = await engine.trigger("store-upgrade", {"amount": 2}, idempotency_key="key-1")
        assert cached.is_cached and cached.id == "run_c"

        # Both old runs resume by replay: their finished steps do not run again.
        await engine.complete_token("tok_w", {"approved": True})
        for run_id, amount in (("run_w", 7), ("run_s", 8)):
            done = await engine.wait_for(run_id, [RunStatus.COMPLETED])
            assert done.output == {"quote": {"amount": amount}, "decision": {"approved": True}}
        assert quotes == []
    finally:
        await engine.stop()

    # Keys stay unique where set; any number of runs have none.
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE hitl_runs SET idempotency_key = 'key-1' WHERE id = 'run_w'")


async def test_another_applications_database_is_refused_and_left_untouched(tmp_path: Path):
    import sqlite3

    from hitl_desktop.agent import create_demo_db
    from hitl_desktop.engine import StoreNotUsable

    target = tmp_path / "target.db"
    create_demo_db(target)
    before = sqlite3.connect(target).execute("select name from sqlite_master").fetchall()
    engine = Engine(f"sqlite:///{target}")
    with pytest.raises(StoreNotUsable, match=r"another application's database.*customers"):
        await engine.open()
    await engine.stop()
    after = sqlite3.connect(target).execute("select name from sqlite_master").fetchall()
    assert after == before  # no store tables, no alembic_version


async def test_a_store_from_a_newer_version_is_refused(store_url: str):
    from hitl_desktop.engine import StoreNotUsable

    engine = Engine(store_url)
    await engine.start()
    await engine.stop()
    import sqlalchemy as sa

    sync_url = store_url.replace("postgresql://", "postgresql+psycopg://")
    db = sa.create_engine(sync_url)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    engine = Engine(store_url)
    with pytest.raises(StoreNotUsable, match=r"revision 9999.*newer hitl-desktop"):
        await engine.open()
    await engine.stop()


async def test_calls_racing_the_first_open_share_one_store(store_url: str):
    import asyncio
    import threading

    def store_threads() -> int:
        return sum(t.name == "hitl-store" and t.is_alive() for t in threading.enumerate())

    before = store_threads()
    engine = Engine(store_url)
    await asyncio.gather(engine.start(), engine.count_runs(), engine.list_runs(), engine.open())
    opened = store_threads() - before
    await engine.stop()
    assert opened == (1 if store_url.startswith("sqlite") else 0)
    assert store_threads() == before  # stop() closed the only store it had


async def test_the_event_log_is_written_only_while_another_engine_is_attached(tmp_path: Path):
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"

    def logged() -> list[str]:
        with sqlite3.connect(path) as db:
            return [r[0] for r in db.execute("select kind from hitl_events order by id")]

    async def cycle(engine: Engine) -> str:
        run = await engine.trigger("store-roundtrip")
        paused = await engine.wait_for(run.id, ["WAITING"], timeout=10)
        assert paused.waiting_token_id is not None
        await engine.complete_token(paused.waiting_token_id, 1)
        assert (await engine.wait_for(run.id, ["COMPLETED"], timeout=10)).output == 1
        return run.id

    alone = Engine(url)
    await alone.start()
    try:
        await cycle(alone)
        assert logged() == []  # nobody else to read it

        watcher = Engine(url, tasks=[], poll_interval=0.02)  # relays, executes nothing
        await watcher.start()
        try:
            async with watcher.events() as stream:
                run_id = await cycle(alone)
                kinds = ["RunTriggered", "RunPaused", "TokenCompleted", "RunResumed"]
                assert logged() == [*kinds, "RunCompleted"]
                async with asyncio.timeout(10):  # and the other engine relays every one
                    seen = [type(e).__name__ async for e in _until_completed(stream, run_id)]
                assert seen == [*kinds, "RunCompleted"]
        finally:
            await watcher.stop()

        await cycle(alone)
        assert len(logged()) == 5  # signed off: nothing more is written
    finally:
        await alone.stop()


async def _until_completed(stream, run_id):
    async for event in stream:
        if event.run_id == run_id:
            yield event
            if type(event).__name__ == "RunCompleted":
                return
