"""The read set: what a proposal relied on is kept in its review and read again under the apply
step's lock; a read that returns something else ends the run ``conflict`` and writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitl_desktop.agent import Catalogue, reflect_catalogue, validate
from hitl_desktop.agent.apply import Applied, apply_proposal, writer_engine
from hitl_desktop.agent.db_change import decide, request_change
from hitl_desktop.agent.diff import diff_proposal
from hitl_desktop.agent.llm import OpenAIProposer, tool_read
from hitl_desktop.agent.offline import OfflineProposer
from hitl_desktop.agent.proposal import Proposal
from hitl_desktop.agent.proposer import ProposalSession, Proposer, ReadTools
from hitl_desktop.agent.reads import Read, parent_reads
from hitl_desktop.agent.review import Decision, Outcome, Review, review_from_steps
from hitl_desktop.agent.targets import Targets
from hitl_desktop.engine import Engine, RunContext, RunStatus, task, wait
from tests.agent.helpers import REFUND, MakeDb, change_for, proposal

from .openai_server import OpenAIServer, answer, tool_calls


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://")


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest, demo_path: Path) -> str:
    """The demo target as a SQLite file, or as a PostgreSQL database (skipped without one)."""
    if request.param == "sqlite":
        return f"sqlite:///{demo_path}"
    return str(request.getfixturevalue("pg_target"))


async def propose(engine: Engine, targets: Targets, text: str, url: str) -> tuple[str, str]:
    run = await request_change(engine, change_for(targets, text, url))
    run = await engine.wait_for(run.id)
    assert run.status == RunStatus.WAITING, run.error
    assert run.waiting_token_id is not None
    return run.id, run.waiting_token_id


async def approve(engine: Engine, targets: Targets, token_id: str, run_id: str) -> Outcome:
    await decide(engine, targets, token_id, Decision(True, "ana"))
    run = await engine.wait_for(run_id, [RunStatus.COMPLETED, RunStatus.FAILED])
    assert run.status == RunStatus.COMPLETED, run.error
    return Outcome.from_json(run.output)


# ------------------------------------------------------------ the double refund


async def test_two_identical_refunds_approved_in_turn_refund_once(
    engine: Engine, targets: Targets, target_url: str
) -> None:
    text = "Refund $20 on invoice 1042"
    first_run, first_token = await propose(engine, targets, text, target_url)
    second_run, second_token = await propose(engine, targets, text, target_url)

    assert (await approve(engine, targets, first_token, first_run)).outcome == "applied"
    second = await approve(engine, targets, second_token, second_run)

    assert second.outcome == "conflict"
    assert "refunds where invoice_id=1042" in second.message
    assert "0 rows when proposed, 1 row now" in second.message
    (conflict,) = second.conflicts
    assert conflict["read"] == "refunds where invoice_id=1042"
    assert conflict["table"] == "refunds" and conflict["key"] == {"invoice_id": 1042}
    assert query(target_url, "select count(*) from refunds where invoice_id=1042") == [(1,)]
    assert query(target_url, "select run_id from hitl_applied_writes") == [(first_run,)]


async def test_the_review_keeps_what_the_proposal_relied_on(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    run_id, _ = await propose(
        engine, targets, "Refund $20 on invoice 1042", f"sqlite:///{demo_path}"
    )
    review = review_from_steps(await engine.get_steps(run_id))
    assert review is not None
    invoice, refunds, parent = review.reads
    assert (invoice.tool, invoice.table, invoice.match) == ("get_row", "invoices", {"id": 1042})
    (row,) = invoice.rows
    assert row["number"] == "INV-001042" and row["status"] == "paid"
    assert (refunds.tool, refunds.table, refunds.match) == (
        "find_rows",
        "refunds",
        {"invoice_id": 1042},
    )
    assert refunds.limit == 50 and refunds.rows == ()
    # The refund's invoice_id points at the invoice: its parent row, by its referenced column.
    assert (parent.tool, parent.table, parent.match, parent.rows) == (
        "parent",
        "invoices",
        {"id": 1042},
        (row,),
    )
    assert [r.describe() for r in review.reads] == [
        "invoices id=1042",
        "refunds where invoice_id=1042",
        "invoices id=1042",
    ]
    assert Review.from_json(review.to_json()) == review


def test_a_review_stored_without_a_read_set_loads_with_none() -> None:
    stored = {
        "request": "Void invoice 4854",
        "summary": "s",
        "rationale": "r",
        "proposal": {"summary": "s", "rationale": "r", "changes": []},
        "diffs": [],
        "tables": ["invoices"],
        "target": "sqlite:///shop.db",
        "proposer": "offline (demo)",
    }
    assert Review.from_json(stored).reads == ()


async def test_a_row_read_but_not_written_that_changed_is_a_conflict_naming_it(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    run_id, token_id = await propose(
        engine, targets, "Refund $20 on invoice 1042", f"sqlite:///{demo_path}"
    )
    with sqlite3.connect(demo_path) as conn:
        conn.execute("update invoices set status='void' where id=1042")
    outcome = await approve(engine, targets, token_id, run_id)
    assert outcome.outcome == "conflict"
    assert outcome.message == (
        "nothing was written: the proposal relied on invoices id=1042: "
        "the row changed since the proposal (status 'paid' → 'void')"
    )
    assert outcome.conflicts[0]["columns"] == {"status": ["paid", "void"]}
    with sqlite3.connect(demo_path) as conn:
        assert conn.execute("select count(*) from refunds where invoice_id=1042").fetchone() == (0,)


# ------------------------------------------------------------ parent rows of inserts


PARENTS = (
    "create table vaults (id integer primary key, label text not null)",
    "create table owners (id integer primary key, name text not null)",
    "create table items (id integer primary key, note text,"
    " owner_id integer not null references owners(id),"
    " vault_id integer not null references vaults(id))",
    "insert into vaults values (1, 'north')",
    "insert into owners values (1, 'ana')",
)
ITEM = {"op": "insert", "table": "items", "values": {"note": "x", "owner_id": 1, "vault_id": 1}}


def apply_item(db: sa.Engine, catalogue: Catalogue, reads: tuple[Read, ...]) -> Any:
    writer = writer_engine(db.url)
    try:
        return apply_proposal(
            writer, catalogue, proposal(ITEM), [], run_id="r", step="apply", max_rows=5, reads=reads
        )
    finally:
        writer.dispose()


def test_parents_of_inserts_are_read_visible_columns_only(make_db: MakeDb) -> None:
    db = make_db(*PARENTS)
    catalogue = reflect_catalogue(db, deny=("vaults",))
    reads = parent_reads(validate(proposal(ITEM), catalogue, db), db)
    # A hidden table's row shows no columns: only that it exists is relied on.
    assert sorted((r.table, r.match, r.rows) for r in reads) == [
        ("owners", {"id": 1}, ({"id": 1, "name": "ana"},)),
        ("vaults", {"id": 1}, ({},)),
    ]
    with db.begin() as conn:
        conn.exec_driver_sql("update vaults set label = 'south'")
    assert isinstance(apply_item(db, catalogue, reads), Applied)


def test_a_parent_that_changed_since_the_proposal_is_a_conflict(make_db: MakeDb) -> None:
    db = make_db(*PARENTS)
    catalogue = reflect_catalogue(db, deny=("vaults",))
    reads = parent_reads(validate(proposal(ITEM), catalogue, db), db)
    with db.begin() as conn:
        conn.exec_driver_sql("update owners set name = 'bo'")
    (conflict,) = apply_item(db, catalogue, reads)
    assert conflict["read"] == "owners id=1" and conflict["columns"] == {"name": ["ana", "bo"]}
    with db.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from items").scalar() == 0


# ------------------------------------------------------------ a resumed run, the same read set


def reading_probe(proposer: Proposer, catalogue: Catalogue, target: sa.Engine) -> Any:
    """A task that proposes, keeps the read set it saw as a step, waits, then (resumed by a
    replay) returns both that recorded read set and the one the replay derived."""

    @task("read-probe")
    async def probe(ctx: RunContext, payload: dict[str, Any]) -> dict[str, Any]:
        session = ProposalSession(payload["request"], catalogue, ReadTools(catalogue, target), ctx)
        await proposer.propose(session)
        derived = [read.to_json() for read in session.reads]
        first = await ctx.step("reads when proposed", lambda: derived)
        await wait.for_token(await wait.create_token(timeout="1h"))
        return {"first": first, "replayed": derived}

    return probe


async def resumed_reads(
    tmp_path: Path, demo_path: Path, demo_catalogue: Catalogue, make: Any
) -> dict[str, Any]:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    target = sa.create_engine(f"sqlite:///{demo_path}")
    try:
        async with Engine(store, tasks=[reading_probe(make(), demo_catalogue, target)]) as engine:
            run = await engine.trigger("read-probe", {"request": "Refund $20 on invoice 1042"})
            run = await engine.wait_for(run.id, timeout=20)
            assert run.status == RunStatus.WAITING, run.error
        # Between the two processes the rows change: a replay must not read them again.
        with sqlite3.connect(demo_path) as conn:
            conn.execute("update invoices set status='void' where id=1042")
            conn.execute("delete from refunds")
        async with Engine(store, tasks=[reading_probe(make(), demo_catalogue, target)]) as engine:
            assert run.waiting_token_id is not None
            await engine.complete_token(run.waiting_token_id, {"ok": True})
            done = await engine.wait_for(
                run.id, [RunStatus.COMPLETED, RunStatus.FAILED], timeout=20
            )
        assert done.status == RunStatus.COMPLETED, done.error
        return dict(done.output)
    finally:
        target.dispose()


async def test_a_resumed_offline_run_derives_the_same_read_set(
    tmp_path: Path, demo_path: Path, demo_catalogue: Catalogue
) -> None:
    output = await resumed_reads(tmp_path, demo_path, demo_catalogue, OfflineProposer)
    assert output["replayed"] == output["first"]
    assert [(r["tool"], r["table"]) for r in output["first"]] == [
        ("get_row", "invoices"),
        ("find_rows", "refunds"),
    ]
    assert output["first"][0]["rows"][0]["status"] == "paid"


async def test_the_models_reads_join_the_read_set_and_replay_the_same(
    tmp_path: Path, demo_path: Path, demo_catalogue: Catalogue
) -> None:
    proposers: list[OpenAIProposer] = []
    with OpenAIServer() as server:
        server.script(
            tool_calls(
                ("get_row", {"table": "invoices", "key": [{"column": "id", "value": 1042}]}),
                (
                    "find_rows",
                    {
                        "table": "refunds",
                        "where": [{"column": "invoice_id", "value": 1042}],
                        "limit": 5,
                    },
                ),
                ("get_row", {"table": "nope", "key": []}),  # refused: no read
            ),
            answer(REFUND),
        )

        def make() -> OpenAIProposer:
            proposers.append(
                OpenAIProposer(api_key="k", base_url=server.base_url, timeout=10, max_retries=0)
            )
            return proposers[-1]

        try:
            output = await resumed_reads(tmp_path, demo_path, demo_catalogue, make)
        finally:
            for proposer in proposers:
                await proposer.aclose()
    assert output["replayed"] == output["first"]
    get_row, find_rows = (Read.from_json(item) for item in output["first"])
    assert get_row.describe() == "invoices id=1042" and get_row.rows[0]["status"] == "paid"
    assert (find_rows.describe(), find_rows.limit, find_rows.rows) == (
        "refunds where invoice_id=1042",
        5,
        (),
    )


def test_a_tool_call_that_failed_is_no_read() -> None:
    assert tool_read("get_row", '{"table": "x", "key": []}', "error: unknown table 'x'") is None
    assert tool_read("drop_table", '{"table": "x"}', "[]") is None
    read = tool_read(
        "find_rows", '{"table": "refunds", "where": [{"column": "id", "value": 3}]}', "[]"
    )
    assert read is not None and read.limit == 10 and read.match == {"id": 3}


# ------------------------------------------------------------ PostgreSQL: no phantom refund


def proposed(
    catalogue: Catalogue, reader: sa.Engine, text: str
) -> tuple[Proposal, list[Any], tuple[Read, ...]]:
    """Propose *text* with the offline proposer, outside an engine (each step runs once)."""
    import asyncio

    class Direct:
        async def step(self, name: str, fn: Any, *args: Any) -> Any:
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result

    session = ProposalSession(text, catalogue, ReadTools(catalogue, reader), Direct())
    made = asyncio.run(OfflineProposer().propose(session))
    validated = validate(made, catalogue, reader)
    reads = (*session.reads, *parent_reads(validated, reader))
    return made, diff_proposal(validated, reader), reads


def test_postgresql_two_racing_refunds_the_later_commit_retries_into_a_conflict(
    pg_target: str,
) -> None:
    """The second apply runs, start to commit, inside the first one's transaction (from its
    clock, called just before its marker is written): under READ COMMITTED both would commit.
    SERIALIZABLE fails the first one's commit; its retry reads the new refund: conflict."""
    url = sync_url(pg_target)
    reader = sa.create_engine(url)
    writer = writer_engine(url)
    try:
        catalogue = reflect_catalogue(reader)
        with writer.begin() as conn:  # the markers exist: two first applies would race on DDL
            conn.exec_driver_sql(
                "create table hitl_applied_writes (run_id varchar(64), step varchar(200),"
                " applied_at float not null, rows integer not null, primary key (run_id, step))"
            )
        first = proposed(catalogue, reader, "Refund $20 on invoice 1042")
        second = proposed(catalogue, reader, "Refund $20 on invoice 1042")
        inner: list[Any] = []

        def second_apply() -> float:
            if not inner:
                inner.append(apply_second())
            return 0.0

        def apply_second() -> Any:
            made, diffs, reads = second
            return apply_proposal(
                writer, catalogue, made, diffs, run_id="b", step="apply", max_rows=5, reads=reads
            )

        made, diffs, reads = first
        outer = apply_proposal(
            writer,
            catalogue,
            made,
            diffs,
            run_id="a",
            step="apply",
            max_rows=5,
            reads=reads,
            clock=second_apply,
        )
    finally:
        reader.dispose()
        writer.dispose()
    assert isinstance(inner[0], Applied)
    assert isinstance(outer, list) and outer[0]["message"] == "0 rows when proposed, 1 row now"
    assert query(pg_target, "select count(*) from refunds where invoice_id=1042") == [(1,)]
    assert query(pg_target, "select run_id from hitl_applied_writes") == [("b",)]
