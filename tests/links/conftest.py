"""A store with reviews waiting, and `hitl worker --http 127.0.0.1:0` processes serving their
links: the runs are the built-in db-change task on the demo target (profile `shop`, proposed
offline), requested by a review-only engine in the test process, as a team console does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hitl_desktop.agent import Targets, db_change_task, request_change
from hitl_desktop.application import change_request
from hitl_desktop.cli import main
from hitl_desktop.config import load_settings
from hitl_desktop.engine import Engine, RunStatus
from hitl_desktop.links import SECRET_ENV, link_secret, make_link
from tests import pg
from tests.cli.test_worker import WAIT, WorkerProcess
from tests.shop import shop

__all__ = ["shop"]  # the fixture these tests use from tests.shop

SECRET = "s3cret-for-the-link-tests-only-0123456789"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's settings in a temp dir and the link secret in the environment, for the
    test and the workers it starts."""
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HITL_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("HITL_STORE", "HITL_TARGET", "PGPASSWORD", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)


def hitl(*argv: str) -> None:
    assert main(list(argv)) == 0


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store made by `hitl migrate`: a SQLite file, or a PostgreSQL database for a test
    parametrized indirectly with "postgresql"."""
    if getattr(request, "param", "sqlite") == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.db'}"
        hitl("migrate", "--store", url)
        yield url
        return
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_links")
    try:
        hitl("migrate", "--store", url)
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture
async def console(store: str, shop: Path) -> AsyncIterator[Engine]:
    """Another process's view of the store: a review-only engine."""
    targets = Targets(load_settings().target_profiles())
    engine = Engine(store, tasks=[db_change_task(targets)], migrate=False, execute=False)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        targets.close()


@dataclass
class Served:
    """A worker serving links at *base*, and how to make them."""

    worker: WorkerProcess
    base: str
    store: str

    def link(self, token_id: str, name: str = "ana", lifetime: float = 3600, **kw: float) -> str:
        return make_link(token_id, name, lifetime, **kw).url(self.base, link_secret(self.store))


@pytest.fixture
async def served(store: str, console: Engine) -> AsyncIterator[Served]:
    """A `hitl worker --http 127.0.0.1:0` on the store, killed at the end if still running."""
    worker = await WorkerProcess.start(store, "--http", "127.0.0.1:0")
    try:
        line = await worker.until(lambda line: " serves signed links on " in line)
        yield Served(worker, line.rsplit(" ", 1)[1], store)
    finally:
        if worker.proc.returncode is None:
            await worker.kill()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        yield client


async def waiting_review(console: Engine, text: str = "Refund $20 on invoice 1042") -> str:
    """Request *text* on `shop`; the token of its review once the worker made it wait."""
    run = await request_change(console, change_request(load_settings(), text, profile="shop"))
    run = await console.wait_for(run.id, [RunStatus.WAITING, RunStatus.FAILED], timeout=WAIT)
    assert run.status == RunStatus.WAITING, run.error
    assert run.waiting_token_id is not None
    return run.waiting_token_id


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """No usable keyring backend (keyring's fail backend)."""
    import keyring
    from keyring.backends.fail import Keyring as Fail

    previous = keyring.get_keyring()
    keyring.set_keyring(Fail())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)
