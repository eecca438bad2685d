"""kill -9 around the target's commit: the approved write happens exactly once.

A child process resumes an approved db-change run and kills itself (SIGKILL) at a chosen point:
right after the target transaction committed but before the engine recorded the apply step, or
inside the target transaction before its commit. A fresh engine then recovers the run.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hitl_desktop.agent import TargetProfile, create_demo_db
from hitl_desktop.agent.db_change import ChangeRequest, db_change_task, request_change
from hitl_desktop.agent.review import Outcome
from hitl_desktop.agent.targets import Targets
from hitl_desktop.engine import Engine, RunStatus

CHILD = textwrap.dedent(
    """
    import asyncio, importlib, os, signal, sys
    # The modules, not the package's same-named exports (agent.db_change is also the task).
    apply_module = importlib.import_module("hitl_desktop.agent.apply")
    task_module = importlib.import_module("hitl_desktop.agent.db_change")
    from hitl_desktop.agent.review import Decision
    from hitl_desktop.agent.targets import Targets
    from hitl_desktop.agent import TargetProfile
    from hitl_desktop.engine import Engine

    store, token_id, point, target = sys.argv[1:5]
    targets = Targets({"shop": TargetProfile("shop", target)})
    real_apply = apply_module.apply_proposal
    real_write = apply_module._write

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def after_commit(*args, **kwargs):
        result = real_apply(*args, **kwargs)
        die()  # the target committed; the engine never hears of it
        return result

    def write_then_die(*args, **kwargs):
        real_write(*args, **kwargs)
        die()  # the row is written inside the open transaction, not committed

    if point == "after_commit":
        task_module.apply_proposal = after_commit
    else:
        apply_module._write = write_then_die

    async def main():
        engine = Engine(store, tasks=[task_module.db_change_task(targets)])
        await engine.start()
        await task_module.decide(engine, targets, token_id, Decision(True, "ana"))
        await asyncio.sleep(20)  # the kill comes first
        sys.exit("not killed")

    asyncio.run(main())
    """
)


def refunds(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("select amount from refunds where invoice_id = 1042").fetchall()


@pytest.mark.parametrize("point", ["after_commit", "before_commit"])
async def test_kill_around_the_target_commit_writes_once(tmp_path: Path, point: str) -> None:
    target = tmp_path / "target.db"
    create_demo_db(target)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    url = f"sqlite:///{target}"
    targets = Targets({"shop": TargetProfile("shop", url)})
    engine = Engine(store, tasks=[db_change_task(targets)])
    await engine.start()
    try:
        run = await request_change(engine, ChangeRequest("Refund $20 on invoice 1042", "shop"))
        run = await engine.wait_for(run.id)
        assert run.waiting_token_id is not None
    finally:
        await engine.stop()
        targets.close()

    child = subprocess.run(
        [sys.executable, "-c", CHILD, store, run.waiting_token_id, point, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    written = refunds(target)
    assert len(written) == (1 if point == "after_commit" else 0)

    engine = Engine(store, tasks=[db_change_task(targets)])
    await engine.start()
    try:
        done = await engine.wait_for(run.id, [RunStatus.COMPLETED, RunStatus.FAILED], timeout=30)
    finally:
        await engine.stop()
        targets.close()
    assert done.status == RunStatus.COMPLETED, done.error
    outcome = Outcome.from_json(done.output)
    assert (outcome.outcome, outcome.rows, outcome.reviewer) == ("applied", 1, "ana")
    assert refunds(target) == [(20,)]
    with sqlite3.connect(target) as conn:
        assert conn.execute("select run_id, rows from hitl_applied_writes").fetchall() == [
            (run.id, 1)
        ]
