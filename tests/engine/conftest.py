"""Engine fixtures. Every test that takes `store_url` (or `engine`) runs twice: on a fresh SQLite
file and on a fresh PostgreSQL database. The server is the one tests/conftest.py starts when
PostgreSQL is installed (`make test` installs it), or the one HITL_TEST_PG names; without one,
the PostgreSQL half skips."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hitl_desktop.engine import Engine
from tests import pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_test")
    try:
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    e = Engine(store_url)
    await e.start()
    yield e
    await e.stop()
