"""Engine fixtures. Every test that takes `store_url` (or `engine`) runs twice: on a fresh SQLite
file and on a fresh PostgreSQL database. The server is the one tests/conftest.py starts when
PostgreSQL is installed (`make test` installs it), or the one HITL_TEST_PG names; without one,
the PostgreSQL half skips."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hitl_desktop.engine import Engine


def pg_server() -> str | None:
    return os.environ.get("HITL_TEST_PG") or os.environ.get("HITL_TEST_PG_TARGET")


def _pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        server = str(pg_server())
        conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    server = pg_server()
    if not server:
        pytest.skip("no PostgreSQL: install it (make test does) or set HITL_TEST_PG")
    name = f"hitl_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        _pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    e = Engine(store_url)
    await e.start()
    yield e
    await e.stop()
