"""A SQLite store's files are private from their first byte; a refused file is left as it was."""

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitl_desktop.engine import Engine, StoreNotUsable, task, wait


@task("store-files")
async def store_files(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_store_and_its_wal_and_shm_are_private(tmp_path: Path, umask_022: None):
    path = tmp_path / "runs.db"
    async with Engine(f"sqlite:///{path}") as engine:
        run = await engine.trigger("store-files")
        await engine.wait_for(run.id, ["WAITING"])
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)  # open in WAL mode: all three are there
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


async def test_an_existing_store_and_its_companions_are_tightened_on_open(
    tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    async with Engine(url) as first:  # keeps the -wal and -shm files in place
        run = await first.trigger("store-files")
        await first.wait_for(run.id, ["WAITING"])
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        for f in files:
            f.chmod(0o644)  # as stores made before were
        second = Engine(url)
        try:
            with caplog.at_level(logging.WARNING, "hitl_desktop.engine"):
                await second.open()
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
            assert not caplog.records  # nothing failed, nothing to warn about
            assert (await second.get_run(run.id)).status == "WAITING"
        finally:
            await second.stop()


async def test_a_store_in_a_missing_folder_is_named(tmp_path: Path):
    engine = Engine(f"sqlite:///{tmp_path / 'nowhere' / 'runs.db'}")
    with pytest.raises(StoreNotUsable, match=r"nowhere/runs.db.*cannot be created: No such file"):
        await engine.open()
    await engine.stop()


async def test_a_refused_database_keeps_its_journal_mode_bytes_and_permissions(tmp_path: Path):
    """Issue 12, item 9: the refusal comes before any pragma that changes the file."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, password_hash TEXT)")
        db.execute("INSERT INTO customers VALUES (1, 'x')")
    db.close()
    path.chmod(0o644)
    before = path.read_bytes()
    engine = Engine(f"sqlite:///{path}")
    with pytest.raises(StoreNotUsable, match=r"another application's database.*customers"):
        await engine.open()
    await engine.stop()
    assert path.read_bytes() == before
    assert _mode(path) == 0o644  # not the store's to tighten
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]  # no -wal, no -shm


async def test_a_file_that_is_no_database_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    before = path.read_bytes()
    engine = Engine(f"sqlite:///{path}")
    with pytest.raises(StoreNotUsable, match="it is not a SQLite database"):
        await engine.open()
    await engine.stop()
    assert path.read_bytes() == before
