"""The store: migrations at start, the fast path when current, grouped commits."""

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from hitl_desktop.engine import Engine, RunStatus, task, wait
from hitl_desktop.engine.store.schema import SCHEMA_REVISION


@task("store-roundtrip")
async def roundtrip(ctx, payload):
    token = await wait.create_token(timeout="1h")
    return (await wait.for_token(token)).output


async def test_start_migrates_a_new_store(tmp_path: Path):
    path = tmp_path / "new.db"
    engine = Engine(f"sqlite:///{path}")
    await engine.start()
    await engine.stop()
    db = sqlite3.connect(path)
    assert db.execute("select version_num from alembic_version").fetchall() == [(SCHEMA_REVISION,)]
    assert db.execute("pragma journal_mode").fetchone() == ("wal",)
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert {"hitl_runs", "hitl_steps", "hitl_tokens", "hitl_events", "hitl_engines"} <= tables


def test_a_current_store_opens_without_importing_alembic(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    asyncio.run(_open_and_close(url))
    probe = (
        "import asyncio, sys\n"
        "from hitl_desktop.engine import Engine\n"
        f"e = Engine({url!r})\n"
        "asyncio.run(e.open()); asyncio.run(e.stop())\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def _open_and_close(url: str) -> None:
    engine = Engine(url)
    await engine.open()
    await engine.stop()


async def test_two_engines_opening_a_new_store_at_once_migrate_it_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engines = [Engine(url) for _ in range(3)]
    await asyncio.gather(*(e.open() for e in engines))
    for e in engines:
        await e.stop()
    db = sqlite3.connect(tmp_path / "runs.db")
    assert db.execute("select count(*) from alembic_version").fetchone() == (1,)


async def test_concurrent_runs_share_commits_without_sharing_failures(engine: Engine):
    runs = await asyncio.gather(*(engine.trigger("store-roundtrip", {"n": n}) for n in range(64)))
    tokens = [(await engine.wait_for(r.id)).waiting_token_id for r in runs]
    # Half of the completions are duplicates: they fail inside the same grouped transactions
    # as the ones that succeed, and must not take those down with them.
    results = await asyncio.gather(
        *(engine.complete_token(t, {"n": i}) for i, t in enumerate(tokens)),
        *(engine.complete_token(t, {"n": -1}) for t in tokens),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 64
    for i, run in enumerate(runs):
        done = await engine.wait_for(run.id, [RunStatus.COMPLETED])
        assert done.output == {"n": i}
