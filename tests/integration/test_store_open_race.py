"""Processes create the same new store at the same moment: every one must open it.

The store's migration module promises that "two processes opening a new store at once migrate
it once"; this checks that none of them fails on the way, over many simultaneous opens
(three processes at a time: two collide too rarely for a test that must fail while the bug is
there).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from hitl_desktop.engine.store.schema import SCHEMA_REVISION
from tests import pg

from .conftest import OPENER, Launcher

PROCESSES, STORES = 3, 40


async def test_processes_opening_a_new_store_at_once_all_succeed(
    launcher: Launcher, tmp_path: Path
) -> None:
    at = time.time() + 3.0  # all interpreters have imported the engine and Alembic by then
    procs = [launcher.start(OPENER, tmp_path, STORES, at) for _ in range(PROCESSES)]
    failed = {}
    for proc in procs:
        assert await asyncio.to_thread(proc.wait, 60) == 0, launcher.errors(proc)
        failed[proc.pid] = json.loads(launcher.output(proc))["failed"]
    opens = PROCESSES * STORES
    n_failed = sum(len(f) for f in failed.values())
    print(f"\n{n_failed} of {opens} simultaneous opens of a new store failed")
    assert n_failed == 0, failed


async def test_processes_opening_a_new_postgresql_store_at_once_migrate_it_once(
    launcher: Launcher, tmp_path: Path
) -> None:
    """The advisory lock: three processes create the same new PostgreSQL store together."""
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    import uuid

    import sqlalchemy as sa

    prefix, count = f"hitl_race_{uuid.uuid4().hex[:8]}_", 5
    for i in range(count):
        pg.admin(f'CREATE DATABASE "{prefix}{i}"')
    server = str(pg.server_url()).rsplit("/", 1)[0]
    try:
        at = time.time() + 3.0
        procs = [launcher.start(OPENER, f"{server}/{prefix}", count, at) for _ in range(3)]
        for proc in procs:
            assert await asyncio.to_thread(proc.wait, 60) == 0, launcher.errors(proc)
            assert json.loads(launcher.output(proc))["failed"] == {}
        for i in range(count):
            db = sa.create_engine(
                f"{server}/{prefix}{i}".replace("postgresql://", "postgresql+psycopg://")
            )
            with db.connect() as conn:
                stamps = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
                triggers = conn.execute(
                    sa.text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'hitl_%'")
                ).scalar_one()
            db.dispose()
            # who completed, who created, the audit chain, append-only audit, policy history
            assert [s[0] for s in stamps] == [SCHEMA_REVISION] and triggers == 5
    finally:
        for i in range(count):
            pg.admin(f'DROP DATABASE IF EXISTS "{prefix}{i}" WITH (FORCE)')
