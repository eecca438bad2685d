from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hitl_desktop.engine import Engine


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    e = Engine(store_url)
    await e.start()
    yield e
    await e.stop()
