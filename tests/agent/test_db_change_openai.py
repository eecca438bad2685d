"""db-change with the OpenAI proposer: the key comes from the keyring, the model from a scripted
server on 127.0.0.1, and the key is found nowhere afterwards (store files, logs, outputs)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hitl_desktop import secrets
from hitl_desktop.agent.db_change import (
    decide,
    request_change,
)
from hitl_desktop.agent.review import Decision, Outcome, review_from_steps
from hitl_desktop.agent.targets import Targets
from hitl_desktop.engine import Engine, RunStatus
from tests.agent.helpers import change_for
from tests.keyrings import MemoryKeyring

from .helpers import REFUND
from .openai_server import OpenAIServer, answer, tool_calls

KEY = "sk-live-9b1e4d2a77-KEEP-SECRET"


async def test_the_key_goes_from_the_keyring_to_the_server_and_nowhere_else(
    engine: Engine,
    targets: Targets,
    demo_path: Path,
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets.set_api_key(KEY)
    with OpenAIServer() as server:
        server.script(
            tool_calls(
                ("get_row", {"table": "invoices", "key": [{"column": "id", "value": 1042}]})
            ),
            answer(REFUND),
        )
        change = change_for(
            targets,
            "Refund $20 on invoice 1042",
            f"sqlite:///{demo_path}",
            proposer="openai",
            model="test-model",
            base_url=server.base_url,
        )
        run = await request_change(engine, change)
        run = await engine.wait_for(run.id)
        assert run.status == RunStatus.WAITING, run.error
        assert len(server.requests) == 2
        assert all(r.authorization == f"Bearer {KEY}" for r in server.requests)
        review = review_from_steps(await engine.get_steps(run.id))
        assert review is not None and review.proposer == "openai:test-model"
        assert run.waiting_token_id is not None
        await decide(engine, targets, run.waiting_token_id, Decision(True, "ana"))
        done = await engine.wait_for(run.id, [RunStatus.COMPLETED, RunStatus.FAILED])
        assert Outcome.from_json(done.output).outcome == "applied"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text
    assert KEY not in repr(await engine.get_steps(run.id))


async def test_without_a_key_the_run_fails_clearly(
    engine: Engine, targets: Targets, demo_path: Path, memory_keyring: MemoryKeyring
) -> None:
    change = change_for(
        targets, "Refund $20 on invoice 1042", f"sqlite:///{demo_path}", proposer="openai"
    )
    run = await request_change(engine, change)
    run = await engine.wait_for(run.id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None and "no OpenAI API key" in run.error


async def test_a_proposal_on_more_tables_than_a_token_has_tags_still_waits(
    engine: Engine, targets: Targets, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'wide.db'}"
    wide = sa.create_engine(url)
    with wide.begin() as conn:
        for n in range(12):
            conn.exec_driver_sql(f"create table t{n:02} (id integer primary key, v text)")
    wide.dispose()
    proposal = {
        "summary": "One row in each of twelve tables.",
        "rationale": "Asked for.",
        "changes": [
            {
                "op": "insert",
                "table": f"t{n:02}",
                "key": [],
                "values": [{"column": "v", "value": "x"}],
            }
            for n in range(12)
        ],
    }
    with OpenAIServer() as server:
        server.script(answer(proposal))
        change = change_for(
            targets, "Add a row to every table", url, proposer="openai", base_url=server.base_url
        )
        run = await engine.wait_for((await request_change(engine, change)).id)
    assert run.status == RunStatus.WAITING, run.error
    assert run.waiting_token_id is not None
    token = await engine.get_token(run.waiting_token_id)
    assert len(token.tags) == 10 and token.tags[-1] == "+3 more tables"
    review = review_from_steps(await engine.get_steps(run.id))
    assert review is not None and len(review.tables) == 12
