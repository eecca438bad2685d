"""The apply step's safety: proposing never writes to the target, a locked target is waited for
(for a bounded time), and a bad edit is refused by name before anything is decided or written."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitl_desktop.agent import Catalogue, validate
from hitl_desktop.agent.apply import Applied, apply_proposal, with_edits, writer_engine
from hitl_desktop.agent.db_change import EditRefused, check_edits, decide, request_change
from hitl_desktop.agent.diff import diff_proposal
from hitl_desktop.agent.edit_check import check_decision_edits
from hitl_desktop.agent.errors import ProposalInvalid
from hitl_desktop.agent.reader import reader_engine
from hitl_desktop.agent.retry import TargetBusy, retrying
from hitl_desktop.agent.review import (
    Decision,
    DecisionInvalid,
    Edit,
    parse_edits,
    review_from_steps,
)
from hitl_desktop.agent.targets import Targets
from hitl_desktop.engine import Engine, RunStatus
from tests import pg
from tests.agent.helpers import REFUND_INSERT, change_for, proposal


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("select name from sqlite_master")}


def refunds_of_1042(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.exec_driver_sql("select count(*) from refunds where invoice_id=1042").scalar()
            )
    finally:
        engine.dispose()


# ------------------------------------------------------------ proposing is read-only


async def test_proposing_leaves_the_target_file_byte_identical(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    before = digest(demo_path)
    url = f"sqlite:///{demo_path}"
    run = await request_change(engine, change_for(targets, "Refund $20 on invoice 1042", url))
    assert (await engine.wait_for(run.id)).status == RunStatus.WAITING
    failing = await request_change(engine, change_for(targets, "Refund $20 on invoice 999999", url))
    assert (await engine.wait_for(failing.id)).status == RunStatus.FAILED
    assert digest(demo_path) == before
    assert "hitl_applied_writes" not in tables(demo_path)


def test_the_proposing_reader_cannot_write(demo_path: Path) -> None:
    reader = reader_engine(f"sqlite:///{demo_path}")
    try:
        with pytest.raises(sa.exc.OperationalError, match="readonly"), reader.begin() as conn:
            conn.exec_driver_sql("delete from refunds")
        with reader.connect() as conn:
            assert conn.exec_driver_sql("select count(*) from invoices").scalar()
    finally:
        reader.dispose()
    missing = reader_engine(f"sqlite:///{demo_path.with_name('absent.db')}")
    with pytest.raises(sa.exc.OperationalError, match="unable to open"):
        missing.connect()
    assert not demo_path.with_name("absent.db").exists()  # not created empty either


@pytest.fixture
def select_only(pg_target: str) -> Iterator[str]:
    """The PostgreSQL demo target's URL for a new role that may only SELECT its tables."""
    import psycopg

    role = f"hitl_ro_{uuid.uuid4().hex[:10]}"
    pg.admin(f'CREATE ROLE "{role}" LOGIN')
    grants = [
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"',
    ]
    with psycopg.connect(pg_target, autocommit=True) as conn:
        for sql in grants:
            conn.execute(sql)  # type: ignore[arg-type]
    try:
        yield pg_target.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(pg_target, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')  # type: ignore[arg-type]
        pg.admin(f'DROP ROLE "{role}"')


async def test_postgresql_a_select_only_role_can_propose(
    engine: Engine, targets: Targets, select_only: str
) -> None:
    try:
        change = change_for(targets, "Refund $20 on invoice 1042", select_only)
        run = await engine.wait_for((await request_change(engine, change)).id)
        assert run.status == RunStatus.WAITING, run.error
        review = review_from_steps(await engine.get_steps(run.id))
        assert review is not None and review.reads
        reader = reader_engine(select_only.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with reader.connect() as conn:
                assert conn.exec_driver_sql("show transaction_read_only").scalar() == "on"
                assert (
                    conn.exec_driver_sql("select to_regclass('hitl_applied_writes')").scalar()
                    is None
                )
        finally:
            reader.dispose()
    finally:
        targets.close()  # the role's sessions end before it is dropped


# ------------------------------------------------------------ a locked target


@pytest.fixture
def refund(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> tuple[Any, list[Any]]:
    made = proposal(REFUND_INSERT)
    return made, diff_proposal(validate(made, demo_catalogue, demo_engine), demo_engine)


def held_lock(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def apply_refund(
    path: Path, catalogue: Catalogue, refund: tuple[Any, list[Any]], **options: Any
) -> Any:
    writer = writer_engine(f"sqlite:///{path}")
    made, diffs = refund
    try:
        return apply_proposal(
            writer, catalogue, made, diffs, run_id="r", step="apply", max_rows=5, **options
        )
    finally:
        writer.dispose()


def test_a_lock_released_meanwhile_is_waited_for(
    demo_path: Path, demo_catalogue: Catalogue, refund: tuple[Any, list[Any]]
) -> None:
    holder = held_lock(demo_path)
    release = threading.Timer(0.3, holder.rollback)
    release.start()
    try:
        result = apply_refund(demo_path, demo_catalogue, refund)
    finally:
        release.join()
        holder.close()
    assert isinstance(result, Applied) and result.rows == 1
    assert refunds_of_1042(f"sqlite:///{demo_path}") == 1


def test_a_lock_held_past_the_bound_fails_clearly_and_writes_nothing(
    demo_path: Path, demo_catalogue: Catalogue, refund: tuple[Any, list[Any]]
) -> None:
    before = digest(demo_path)
    holder = held_lock(demo_path)
    try:
        with pytest.raises(TargetBusy, match=r"database is locked.*nothing was written"):
            apply_refund(demo_path, demo_catalogue, refund, retry_for=0.3)
    finally:
        holder.rollback()
        holder.close()
    assert digest(demo_path) == before


def test_postgresql_a_table_lock_is_retried_until_released_then_fails_past_the_bound(
    pg_target: str,
) -> None:
    import psycopg

    from hitl_desktop.agent import reflect_catalogue

    url = pg_target.replace("postgresql://", "postgresql+psycopg://")
    reader = sa.create_engine(url)
    try:
        catalogue = reflect_catalogue(reader)
        made = proposal(REFUND_INSERT)
        diffs = diff_proposal(validate(made, catalogue, reader), reader)
    finally:
        reader.dispose()

    def apply(run_id: str, **options: Any) -> Any:
        writer = writer_engine(url)
        try:
            return apply_proposal(
                writer, catalogue, made, diffs, run_id=run_id, step="apply", max_rows=5, **options
            )
        finally:
            writer.dispose()

    with psycopg.connect(pg_target) as holder:
        holder.execute("LOCK TABLE refunds IN SHARE MODE")
        with pytest.raises(TargetBusy, match=r"lock_not_available.*nothing was written"):
            apply("held", retry_for=0.4)
        release = threading.Timer(0.4, holder.rollback)
        release.start()
        try:
            assert isinstance(apply("released"), Applied)
        finally:
            release.join()
    assert refunds_of_1042(url) == 1


class Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def locked(_wait: float) -> Any:
    raise sqlite3.OperationalError("database is locked")


def test_retries_back_off_exponentially_with_jitter_until_the_attempt_succeeds() -> None:
    clock = Clock()
    failures = iter(range(4))
    waits: list[float] = []

    def attempt(wait: float) -> str:
        waits.append(wait)
        if next(failures, None) is not None:
            locked(wait)
        return "done"

    result = retrying(
        attempt, retry_for=30, sleep=clock.sleep, monotonic=clock.monotonic, jitter=lambda: 1.0
    )
    assert result == "done"
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.4]
    assert len(waits) == 5 and all(0 < w <= 0.25 for w in waits)
    calls = iter([True])

    def once_locked(wait: float) -> None:
        if next(calls, False):
            locked(wait)

    halves: list[float] = []
    retrying(
        once_locked, retry_for=30, sleep=halves.append, monotonic=lambda: 0.0, jitter=lambda: 0.0
    )
    assert halves == [0.025]  # the jitter takes up to half the pause away


def test_retries_stop_at_the_bound_even_with_a_clock_that_stands_still() -> None:
    sleeps: list[float] = []
    with pytest.raises(TargetBusy, match=r"SQLite: database is locked\); nothing was written"):
        retrying(locked, retry_for=2.0, sleep=sleeps.append, monotonic=lambda: 0.0)
    assert 0 < sum(sleeps) <= 2.0


def test_an_error_that_waiting_cannot_cure_is_not_retried() -> None:
    sleeps: list[float] = []

    def broken(_wait: float) -> None:
        raise sqlite3.OperationalError("no such table: refunds")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retrying(broken, sleep=sleeps.append)
    assert sleeps == []


# ------------------------------------------------------------ bad edits


async def waiting_refund(engine: Engine, targets: Targets, demo_path: Path) -> tuple[str, str]:
    change = change_for(targets, "Refund $20 on invoice 1042", f"sqlite:///{demo_path}")
    run = await engine.wait_for((await request_change(engine, change)).id)
    assert run.status == RunStatus.WAITING and run.waiting_token_id is not None, run.error
    return run.id, run.waiting_token_id


async def test_an_edit_of_the_wrong_shape_is_refused_by_name_and_the_run_waits(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    run_id, token_id = await waiting_refund(engine, targets, demo_path)
    edits = parse_edits({"0": {"amount": ["15.00"]}})
    with pytest.raises(EditRefused, match=r"change 0 \(refunds.amount\)") as refused:
        await decide(engine, targets, token_id, Decision(True, "ana", edits=edits))
    (problem,) = refused.value.problems
    assert (problem.index, problem.column, problem.code) == (0, "amount", "bad_value")
    assert "not list" in problem.message
    assert (await engine.get_token(token_id)).status == "WAITING"
    assert (await engine.get_run(run_id)).status == RunStatus.WAITING


def test_with_edits_turns_a_value_of_the_wrong_shape_into_a_problem() -> None:
    with pytest.raises(ProposalInvalid) as invalid:
        with_edits(proposal(REFUND_INSERT), (Edit(0, {"amount": {"x": 1}, "note": "fine"}),))
    assert [(p.index, p.table, p.column) for p in invalid.value.problems] == [
        (0, "refunds", "amount")
    ]


async def test_an_insert_edited_onto_an_existing_key_is_a_validation_problem(
    engine: Engine,
    targets: Targets,
    demo_path: Path,
    demo_catalogue: Catalogue,
    demo_engine: sa.Engine,
) -> None:
    run_id, token_id = await waiting_refund(engine, targets, demo_path)
    edit = (Edit(0, {"id": 12}),)
    (problem,) = await check_edits(engine, targets, run_id, edit)
    assert (problem.code, str(problem)) == (
        "row_exists",
        "change 0 (refunds): refunds id=12 already exists",
    )
    with pytest.raises(EditRefused, match="refunds id=12 already exists"):
        await decide(engine, targets, token_id, Decision(True, "ana", edits=edit))
    # The apply step's locked re-validation finds it too: a problem, never an IntegrityError.
    review = review_from_steps(await engine.get_steps(run_id))
    assert review is not None
    edited = with_edits(proposal(REFUND_INSERT), edit)
    result = apply_refund(demo_path, demo_catalogue, (edited, list(review.diffs)))
    assert isinstance(result, ProposalInvalid) and result.problems[0].code == "row_exists"
    fine = (Edit(0, {"id": 99_999}),)
    assert await check_decision_edits(review, fine, demo_catalogue, demo_engine) == []


def test_two_inserts_with_the_same_key_in_their_values_are_a_duplicate(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    one = {**REFUND_INSERT, "values": {**REFUND_INSERT["values"], "id": 5000}}  # type: ignore[dict-item]
    with pytest.raises(ProposalInvalid, match="change 0 already touches the row id=5000"):
        validate(proposal(one, one), demo_catalogue, demo_engine)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"decision": "approve", "reviewer": "ana", "comment": "ok \ud800"}, "the comment"),
        ({"decision": "approve", "reviewer": "an\udfffa"}, "'reviewer'"),
        (
            {"decision": "approve", "reviewer": "ana", "edits": {"0": {"note": "x\udc80"}}},
            "the value of 'note' in edit 0",
        ),
        (
            {"decision": "approve", "reviewer": "ana", "edits": {"0": {"no\ud83dte": "x"}}},
            "a column name of edit 0",
        ),
    ],
)
def test_text_that_is_not_valid_unicode_is_refused_naming_the_field(
    data: dict[str, Any], field: str
) -> None:
    with pytest.raises(DecisionInvalid, match=f"^{field} contains .*lone surrogate"):
        Decision.from_json(data)
