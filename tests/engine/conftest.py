"""Engine fixtures. Every test gets a fresh store: a SQLite file, or a fresh PostgreSQL database
when HITL_TEST_PG names a server (e.g. postgresql://postgres@127.0.0.1:55432/postgres)."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hitl_desktop.engine import Engine

PG = os.environ.get("HITL_TEST_PG")


def _pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    if not PG:
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    name = f"hitl_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG.rsplit("/", 1)[0] + "/" + name
    finally:
        _pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    e = Engine(store_url)
    await e.start()
    yield e
    await e.stop()
