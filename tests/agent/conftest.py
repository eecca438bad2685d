"""Agent fixtures: a fresh demo target per test (a copy of one generated SQLite file), and an
async target that is SQLite, or a fresh PostgreSQL database when HITL_TEST_PG names a server
(tests/conftest.py starts one when PostgreSQL is installed)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hitl_desktop.agent import (
    DEFAULT_DENY,
    DEMO_ALLOW,
    Catalogue,
    create_demo_db,
    reflect_catalogue,
    write_demo,
)


def pg_server() -> str | None:
    """The PostgreSQL server for target tests: started by tests/conftest.py, or named by hand."""
    return os.environ.get("HITL_TEST_PG_TARGET") or os.environ.get("HITL_TEST_PG")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "template.db"
    create_demo_db(path)
    return path


@pytest.fixture
def demo_path(demo_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "target.db"
    shutil.copyfile(demo_template, path)
    return path


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


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        server = pg_server()
        assert server is not None
        conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", "postgresql"])
async def async_demo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The demo database behind an AsyncEngine: aiosqlite, and asyncpg when HITL_TEST_PG is set."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'async.db'}"
    elif not pg_server():
        pytest.skip("no PostgreSQL: install it (make test does) or set HITL_TEST_PG_TARGET")
    else:
        name = f"hitl_agent_{uuid.uuid4().hex[:12]}"
        await asyncio.to_thread(_pg_admin, f'CREATE DATABASE "{name}"')
        base = str(pg_server()).replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0]
        url = f"{base}/{name}"
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync_conn: write_demo(sync_conn))
        yield engine
    finally:
        await engine.dispose()
        if name is not None:
            await asyncio.to_thread(_pg_admin, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def pg_target() -> Iterator[str]:
    """A fresh PostgreSQL database holding the demo data; its sync URL (psycopg)."""
    server = pg_server()
    if not server:
        pytest.skip("no PostgreSQL: install it (make test does) or set HITL_TEST_PG_TARGET")
    name = f"hitl_target_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    url = server.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0] + f"/{name}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            write_demo(conn)
    finally:
        engine.dispose()
    yield url
    _pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')
