"""Agent fixtures: a fresh demo target per test (a copy of one generated SQLite file), and an
async target that is SQLite, or a fresh PostgreSQL database when HITL_TEST_PG names a server
(tests/conftest.py starts one when PostgreSQL is installed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hitl_desktop import secrets
from hitl_desktop.agent import (
    DEFAULT_DENY,
    DEMO_ALLOW,
    Catalogue,
    reflect_catalogue,
    write_demo,
)
from hitl_desktop.agent.db_change import db_change_task
from hitl_desktop.agent.targets import Targets
from hitl_desktop.engine import Engine
from tests import pg
from tests.agent.helpers import DEMO_TODAY


@pytest.fixture
def demo_engine(demo_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{demo_path}")
    yield engine
    engine.dispose()


@pytest.fixture
def demo_catalogue(demo_engine: sa.Engine) -> Catalogue:
    return reflect_catalogue(demo_engine, allow=DEMO_ALLOW, deny=DEFAULT_DENY)


@pytest.fixture
def make_db(tmp_path: Path) -> Iterator[Callable[..., sa.Engine]]:
    """make_db("create table ...", ...) → an engine on a fresh SQLite file with those tables."""
    engines: list[sa.Engine] = []

    def make(*ddl: str) -> sa.Engine:
        engine = sa.create_engine(f"sqlite:///{tmp_path / f'db{len(engines)}.db'}")
        engines.append(engine)
        with engine.begin() as conn:
            for statement in ddl:
                conn.exec_driver_sql(statement)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def async_demo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The demo database behind an AsyncEngine: aiosqlite, and asyncpg when HITL_TEST_PG is set."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'async.db'}"
    elif not pg.server_url():
        pytest.skip(pg.SKIP)
    else:
        name, plain = await asyncio.to_thread(pg.create_database, "hitl_agent")
        url = plain.replace("postgresql://", "postgresql+asyncpg://")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync_conn: write_demo(sync_conn, today=DEMO_TODAY))
        yield engine
    finally:
        await engine.dispose()
        if name is not None:
            await asyncio.to_thread(pg.drop_database, name)


@pytest.fixture
def pg_target() -> Iterator[str]:
    """A fresh PostgreSQL database holding the demo data; its sync URL (psycopg)."""
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_target")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            write_demo(conn, today=DEMO_TODAY)
    finally:
        engine.dispose()
    yield url
    pg.drop_database(name)


@pytest.fixture
def targets() -> Iterator[Targets]:
    """This test's machine: no profiles until the test adds them (see helpers.change_for)."""
    # The key is looked up only for a profile whose proposer is a model; the tests of those
    # install an in-memory keyring. No test database has a password.
    targets = Targets(api_key=secrets.get_api_key)
    yield targets
    targets.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, targets: Targets
) -> AsyncIterator[Engine]:
    """A started engine on a fresh store (a SQLite file, and a PostgreSQL database) that knows
    the db-change task, executing its runs with the test's `targets`."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.db'}"
    elif not pg.server_url():
        pytest.skip(pg.SKIP)
    else:
        name, url = await asyncio.to_thread(pg.create_database, "hitl_agent_store")
    engine = Engine(url, tasks=[db_change_task(targets)])
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        if name is not None:
            await asyncio.to_thread(pg.drop_database, name)
