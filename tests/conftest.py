import os
import shutil
from pathlib import Path

import pytest

# Qt needs a platform plugin; tests never have a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_configure(config):
    """Start a throwaway PostgreSQL server for the target-database tests when the binaries are
    installed and no server is named (HITL_TEST_PG_TARGET, or HITL_TEST_PG for the store too)."""
    if os.environ.get("HITL_TEST_PG_TARGET") or os.environ.get("HITL_TEST_PG"):
        return
    if os.environ.get("HITL_TEST_NO_PG"):
        return
    from tests import pg

    server = pg.start()
    if server is not None:
        os.environ["HITL_TEST_PG_TARGET"] = server.url
        config._hitl_pg = server


def pytest_unconfigure(config):
    server = getattr(config, "_hitl_pg", None)
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo target database, generated once per session."""
    from hitl_desktop.agent import create_demo_db
    from tests.agent.helpers import DEMO_TODAY

    path = tmp_path_factory.mktemp("demo") / "template.db"
    create_demo_db(path, today=DEMO_TODAY)
    return path


@pytest.fixture
def demo_path(demo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo target database for one test."""
    path = tmp_path / "target.db"
    shutil.copyfile(demo_template, path)
    return path


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch):
    """An in-memory keyring for the test (and no OPENAI_API_KEY from the environment)."""
    import keyring

    from tests.keyrings import MemoryKeyring

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)
