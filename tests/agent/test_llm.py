"""The OpenAI proposer, with the real openai client against a scripted server on 127.0.0.1,
inside a real engine run on a fresh store, on the demo target database."""

from __future__ import annotations

import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitl_desktop.agent import Catalogue, Proposal, proposal_response_format
from hitl_desktop.agent.llm import OpenAIProposer
from hitl_desktop.agent.proposer import ProposalSession, ReadTools
from hitl_desktop.engine import Engine, Run, RunContext, RunStatus, task, wait

from .helpers import REFUND
from .openai_server import (
    OpenAIServer,
    answer,
    bad_key,
    delayed,
    error,
    refusal,
    text,
    tool_calls,
)

KEY = "sk-test-7f3a9c51e2-DO-NOT-LEAK"
INJECTION = "'; DROP TABLE invoices; --"


def update_invoice(*values: tuple[str, Any], table: str = "invoices", key: int = 1042) -> dict:
    return {
        "op": "update",
        "table": table,
        "key": [{"column": "id", "value": key}],
        "values": [{"column": c, "value": v} for c, v in values],
    }


def proposal_of(*changes: dict) -> dict:
    return {"summary": "s", "rationale": "r", "changes": list(changes)}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Everything the openai client and httpx log, so the key test sees it all.
    caplog.set_level(logging.DEBUG)


@dataclass
class Harness:
    tmp_path: Path
    server: OpenAIServer
    target: sa.Engine
    catalogue: Catalogue
    proposers: list[OpenAIProposer]

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.tmp_path / 'runs.db'}"

    def proposer(self, **options: Any) -> OpenAIProposer:
        options = {"timeout": 10.0, "max_retries": 0, "base_url": self.server.base_url, **options}
        proposer = OpenAIProposer(api_key=KEY, **options)
        self.proposers.append(proposer)
        return proposer

    def probe(self, proposer: OpenAIProposer, *, pause: bool = False) -> Any:
        """The task under test: propose, and with *pause* then wait for a decision."""
        catalogue, target = self.catalogue, self.target

        @task("llm-probe")
        async def probe(ctx: RunContext, payload: dict[str, Any]) -> dict[str, Any]:
            tools = ReadTools(catalogue, target)
            session = ProposalSession(payload["request"], catalogue, tools, recorder=ctx)
            proposal = await proposer.propose(session)
            out: dict[str, Any] = {"proposal": proposal.to_wire(), "label": proposer.label}
            if pause:
                token = await wait.create_token(timeout="1h")
                out["decision"] = (await wait.for_token(token)).output
            return out

        return probe

    async def run(self, request: str = "Refund $20 on invoice 1042", **options: Any) -> Run:
        proposer = self.proposer(**options)
        async with Engine(self.store_url, tasks=[self.probe(proposer)]) as engine:
            run = await engine.trigger("llm-probe", {"request": request})
            return await engine.wait_for(run.id, timeout=20)

    async def steps(self, run_id: str) -> list[str]:
        async with Engine(self.store_url, tasks=[]) as engine:
            return [step.name for step in await engine.get_steps(run_id)]

    def assert_no_key(self, caplog: pytest.LogCaptureFixture) -> None:
        """The key is nowhere in the store's files or the captured logs."""
        for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
            path = self.tmp_path / name
            if path.exists():
                assert KEY.encode() not in path.read_bytes(), name
        assert KEY not in caplog.text
        assert all(KEY not in repr(p) for p in self.proposers)


@pytest.fixture
async def h(
    tmp_path: Path, server: OpenAIServer, demo_engine: sa.Engine, demo_catalogue: Catalogue
) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, server, demo_engine, demo_catalogue, [])
    yield harness
    for proposer in harness.proposers:
        await proposer.aclose()


def dump(engine: sa.Engine) -> list[str]:
    """The whole target database as SQL text, to compare before and after."""
    url = engine.url.database
    assert url is not None
    with sqlite3.connect(url) as conn:
        return list(conn.iterdump())


def tool_results(request: Any) -> list[str]:
    return [m["content"] for m in request.messages if m["role"] == "tool"]


# ------------------------------------------------------------ happy paths


async def test_reads_a_row_with_a_tool_then_proposes(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.server.script(
        tool_calls(("get_row", {"table": "invoices", "key": [{"column": "id", "value": 1042}]})),
        answer(REFUND),
    )
    run = await h.run()

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output["label"] == "openai:gpt-4o"
    assert Proposal.model_validate(run.output["proposal"]) == Proposal.model_validate(REFUND)
    first, second = h.server.requests
    assert first.authorization == f"Bearer {KEY}"
    body = first.body
    assert body["model"] == "gpt-4o"
    assert body["response_format"] == proposal_response_format()
    tools = {t["function"]["name"]: t["function"] for t in body["tools"]}
    assert set(tools) == {"get_row", "find_rows"}
    assert all(t["strict"] for t in tools.values())
    system, user = first.messages
    assert system["role"] == "system" and "never" in system["content"].lower()
    assert h.catalogue.describe() in system["content"]
    assert user == {"role": "user", "content": "Refund $20 on invoice 1042"}
    # The model got the row back, visible columns only, as the answer to its call.
    (row,) = tool_results(second)
    assert '"number":"INV-001042"' in row and "password_hash" not in row
    assert second.messages[-2]["tool_calls"][0]["function"]["name"] == "get_row"
    assert await h.steps(run.id) == ["llm 1", "tool 1.1 get_row", "llm 2", "check 1"]
    h.assert_no_key(caplog)


async def test_a_server_error_is_retried_by_the_client(h: Harness) -> None:
    h.server.script(error(500, "overloaded", retry_after_ms=10), answer(REFUND))
    run = await h.run(max_retries=1)
    assert run.status == RunStatus.COMPLETED, run.error
    assert len(h.server.requests) == 2
    assert await h.steps(run.id) == ["llm 1", "check 1"]


async def test_replay_makes_no_new_requests(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.server.script(
        tool_calls(
            ("find_rows", {"table": "customers", "where": [], "limit": 2}),
            ("get_row", {"table": "invoices", "key": [{"column": "id", "value": 1042}]}),
        ),
        text("not json"),
        answer(REFUND),
    )
    first = h.proposer()
    async with Engine(h.store_url, tasks=[h.probe(first, pause=True)]) as engine:
        run = await engine.trigger("llm-probe", {"request": "Refund $20 on invoice 1042"})
        waiting = await engine.wait_for(run.id, timeout=20)
        assert waiting.status == RunStatus.WAITING, waiting.error
        token_id = waiting.waiting_token_id
        steps = [s.name for s in await engine.get_steps(run.id)]
    served = len(h.server.requests)
    assert served == 3

    # The app closes; a new one (new engine, new client) resumes the run by replay.
    h.server.script(error(500, "a replay must not call the model"))
    second = h.proposer()
    async with Engine(h.store_url, tasks=[h.probe(second, pause=True)]) as engine:
        assert token_id is not None
        await engine.complete_token(token_id, {"approved": True})
        done = await engine.wait_for(run.id, statuses=["COMPLETED", "FAILED"], timeout=20)
        replayed = [s.name for s in await engine.get_steps(run.id)]

    assert done.status == RunStatus.COMPLETED, done.error
    assert len(h.server.requests) == served
    assert done.output["decision"] == {"approved": True}
    assert Proposal.model_validate(done.output["proposal"]) == Proposal.model_validate(REFUND)
    assert steps == [
        "llm 1",
        "tool 1.1 find_rows",
        "tool 1.2 get_row",
        "llm 2",
        "llm 3",
        "check 1",
        "create_token",
    ]
    assert replayed[: len(steps)] == steps
    h.assert_no_key(caplog)


# ------------------------------------------------------------ bad answers are fed back


async def test_malformed_json_is_fed_back(h: Harness) -> None:
    h.server.script(text('{"summary": "Refund", "changes": ['), answer(REFUND))
    run = await h.run()

    assert run.status == RunStatus.COMPLETED, run.error
    feedback = h.server.requests[1].messages[-1]
    assert feedback["role"] == "user"
    assert "not a valid proposal" in feedback["content"]
    assert "Invalid JSON" in feedback["content"]
    # The bad answer itself stays in the conversation, before the feedback.
    assert h.server.requests[1].messages[-2]["content"].startswith('{"summary": "Refund"')


async def test_wrong_shapes_are_fed_back(h: Harness) -> None:
    wrong = proposal_of(update_invoice(("amount", [20, 0])))
    wrong["changes"][0]["op"] = "upsert"
    h.server.script(answer(wrong), answer(REFUND))
    run = await h.run()

    assert run.status == RunStatus.COMPLETED, run.error
    feedback = h.server.requests[1].messages[-1]["content"]
    assert "changes.0.op" in feedback
    assert "changes.0.values.value: must be a string, a number, true, false or null" in feedback


async def test_wrong_types_and_unknown_tables_are_fed_back(h: Harness) -> None:
    bad = proposal_of(
        update_invoice(("amount", "lots of money"), ("paid_at", 17)),
        update_invoice(("status", "void"), table="invoice"),
        update_invoice(("status", "void"), table=INJECTION),
    )
    h.server.script(answer(bad), answer(REFUND))
    before = dump(h.target)
    run = await h.run()

    assert run.status == RunStatus.COMPLETED, run.error
    feedback = h.server.requests[1].messages[-1]["content"]
    assert feedback.startswith("The proposal was rejected.")
    assert "change 0 (invoices.amount)" in feedback
    assert "there is no table 'invoice'; did you mean 'invoices'?" in feedback
    assert f"there is no table {INJECTION!r}" in feedback
    assert dump(h.target) == before


async def test_bad_tool_calls_become_errors_for_the_model(h: Harness) -> None:
    h.server.script(
        tool_calls(
            ("get_row", '{"table": "invoices", "key": ['),
            ("get_row", {"table": INJECTION, "key": [{"column": "id", "value": 1}]}),
            ("get_row", {"table": "invoices", "key": [{"column": "id", "value": "abc"}]}),
            (
                "find_rows",
                {"table": "customers", "where": [{"column": "name", "value": INJECTION}]},
            ),
            ("find_rows", {"table": "customers", "where": [], "limit": -1}),
            ("drop_table", {"table": "invoices"}),
            ("get_row", {"table": "invoices", "key": [{"column": "id", "value": 999999}]}),
        ),
        answer(REFUND),
    )
    before = dump(h.target)
    run = await h.run()

    assert run.status == RunStatus.COMPLETED, run.error
    results = tool_results(h.server.requests[1])
    assert results[0].startswith("error: the arguments are not valid JSON")
    assert results[1].startswith("error: unknown table") and "invoices" in results[1]
    assert results[2].startswith("error: invoices.id:")
    assert results[3] == "[]"  # the injection string was a bound value, matching no name
    assert results[4].startswith("error: 'limit' must be a positive whole number")
    assert results[5].startswith("error: there is no tool 'drop_table'")
    assert results[6] == "null"
    steps = await h.steps(run.id)
    assert steps[1:8] == [
        "tool 1.1 get_row",
        "tool 1.2 get_row",
        "tool 1.3 get_row",
        "tool 1.4 find_rows",
        "tool 1.5 find_rows",
        "tool 1.6 unknown",
        "tool 1.7 get_row",
    ]
    assert dump(h.target) == before


async def test_sql_injection_in_a_value_stays_data(h: Harness) -> None:
    sneaky = {**REFUND, "changes": [dict(REFUND["changes"][0])]}
    sneaky["changes"][0]["values"] = [
        *REFUND["changes"][0]["values"],
        {"column": "note", "value": INJECTION},
    ]
    h.server.script(answer(sneaky))
    before = dump(h.target)
    run = await h.run()

    assert run.status == RunStatus.COMPLETED, run.error
    proposal = Proposal.model_validate(run.output["proposal"])
    assert proposal.changes[0].values["note"] == INJECTION
    # Proposing writes nothing, and the invoices are all there.
    assert dump(h.target) == before
    with h.target.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from invoices").scalar() == 6000


async def test_an_oversized_changes_array_is_fed_back(h: Harness) -> None:
    huge = proposal_of(*(update_invoice(("status", "void"), key=k) for k in range(1000, 1051)))
    h.server.script(answer(huge), answer(REFUND))
    run = await h.run()

    assert run.status == RunStatus.COMPLETED, run.error
    feedback = h.server.requests[1].messages[-1]["content"]
    assert "the proposal changes 51 rows, over the limit of 50" in feedback


async def test_too_many_invalid_answers_fail_the_run(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    huge = proposal_of(*(update_invoice(("status", "void"), key=k) for k in range(1000, 1051)))
    h.server.script(
        text("I will refund it now."),
        answer(proposal_of(update_invoice(("amount", "lots")))),
        answer(huge),
        answer(REFUND),  # never asked for
    )
    before = dump(h.target)
    run = await h.run(max_invalid=3)

    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("ProposerFailed: the model gave 3 invalid answers")
    assert "over the limit of 50" in run.error
    assert len(h.server.requests) == 3
    assert h.server.remaining == 1
    assert dump(h.target) == before
    h.assert_no_key(caplog)


async def test_an_empty_answer_counts_as_invalid(h: Harness) -> None:
    h.server.script(text(""), text('{"summary": "cut'), answer(REFUND))
    run = await h.run(max_invalid=2)
    assert run.status == RunStatus.FAILED
    assert run.error is not None and "2 invalid answers" in run.error
    first_feedback = h.server.requests[1].messages[-1]["content"]
    assert "the answer is empty" in first_feedback


async def test_a_proposal_without_changes_fails_with_the_models_reason(h: Harness) -> None:
    nothing = {"summary": "There is no invoice 99999999.", "rationale": "-", "changes": []}
    h.server.script(answer(nothing))
    run = await h.run()
    assert run.status == RunStatus.FAILED
    assert (
        run.error == "ProposerFailed: the model proposed no change: There is no invoice 99999999."
    )


async def test_endless_tool_calls_are_bounded_by_max_turns(h: Harness) -> None:
    call = ("find_rows", {"table": "plans", "where": [], "limit": 1})
    h.server.script(*(tool_calls(call) for _ in range(5)))
    run = await h.run(max_turns=3)
    assert run.status == RunStatus.FAILED
    assert run.error == "ProposerFailed: the model found no valid proposal within 3 calls"
    assert len(h.server.requests) == 3


async def test_a_refusal_fails_the_run(h: Harness) -> None:
    h.server.script(refusal("I can't help with that."))
    run = await h.run()
    assert run.status == RunStatus.FAILED
    assert run.error == "ProposerFailed: the model refused: I can't help with that."


# ------------------------------------------------------------ the server fails


async def test_a_rejected_key_is_a_clear_error_without_the_key(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.server.script(bad_key())
    run = await h.run()

    assert h.server.requests[0].authorization == f"Bearer {KEY}"
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert "rejected the API key (HTTP 401)" in run.error
    assert "Incorrect API key provided: ***" in run.error
    assert KEY not in run.error and KEY not in (run.traceback or "")
    h.assert_no_key(caplog)


async def test_an_http_error_names_the_status(h: Harness) -> None:
    h.server.script(error(404, "The model `gpt-9` does not exist"))
    run = await h.run(model="gpt-9")
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert "answered HTTP 404 for model 'gpt-9': The model `gpt-9` does not exist" in run.error


async def test_a_slow_server_times_out(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.server.script(delayed(answer(REFUND), 5.0))
    started = time.monotonic()
    run = await h.run(timeout=0.5, max_retries=0)

    assert time.monotonic() - started < 4
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert "did not answer within 0.5 s (tried 1 time(s))" in run.error
    h.assert_no_key(caplog)


async def test_an_unreachable_server_is_a_clear_error(h: Harness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on that port any more.
    run = await h.run(base_url=f"http://127.0.0.1:{port}/v1")
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert f"cannot reach the model server (http://127.0.0.1:{port}/v1)" in run.error


# ------------------------------------------------------------ the proposer itself


def test_label_and_repr_hide_the_key() -> None:
    proposer = OpenAIProposer(api_key=KEY, model="gpt-4o-mini", base_url="http://127.0.0.1:1/v1")
    assert proposer.label == "openai:gpt-4o-mini"
    assert KEY not in repr(proposer)
    assert KEY not in repr(vars(proposer))  # held by the client only
    with pytest.raises(ValueError):
        OpenAIProposer(api_key=KEY, max_invalid=0)


def test_tool_schemas_follow_strict_mode() -> None:
    """Strict function tools: every object lists all its properties and allows no others."""
    from hitl_desktop.agent.llm import TOOLS

    def objects(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for value in node:
                yield from objects(value)

    for tool in TOOLS:
        assert tool["function"]["strict"] is True
        found = list(objects(tool["function"]["parameters"]))
        assert len(found) == 2  # the arguments and a column/value pair
        for node in found:
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])
        assert "$ref" not in str(tool)
