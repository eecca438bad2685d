from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hitl_desktop.agent import (
    DEFAULT_DENY,
    DEMO_ALLOW,
    Catalogue,
    Problem,
    Proposal,
    ProposalInvalid,
    ValidatedProposal,
    reflect_catalogue,
    reflect_catalogue_async,
    validate,
    validate_async,
)
from hitl_desktop.agent import validation as validation_module
from tests.agent.helpers import REFUND_INSERT, MakeDb, proposal

ANNUAL = {"op": "update", "table": "subscriptions", "key": {"id": 20}, "values": {"plan_id": "4"}}


def problems_of(
    p: Proposal, catalogue: Catalogue, target: Any, **kwargs: Any
) -> list[tuple[int | None, str | None, str | None, str]]:
    with pytest.raises(ProposalInvalid) as info:
        validate(p, catalogue, target, **kwargs)
    return [(x.index, x.table, x.column, x.code) for x in info.value.problems]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        seen.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


# ---- The issue's examples ---------------------------------------------------------------------


def test_the_issue_examples_validate_with_coerced_values(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    result = validate(proposal(REFUND_INSERT, ANNUAL), demo_catalogue, demo_engine)
    assert isinstance(result, ValidatedProposal) and result.checked_database
    refund, annual = result.changes
    assert refund.key == {} and refund.values["amount"] == Decimal("20.00")
    assert refund.values["created_at"] == datetime(2025, 7, 1, 10, 0)
    assert annual.key == {"id": 20} and annual.values == {"plan_id": 4}
    assert result.tables == ("refunds", "subscriptions")


def test_every_problem_is_named_at_once(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    bad = proposal(
        {
            "op": "update",
            "table": "customers",
            "key": {"id": 17},
            "values": {"password_hash": "x", "emial": "a@b.c", "created_at": "yesterday"},
        },
        {"op": "update", "table": "custmers", "key": {"id": 17}, "values": {"name": "x"}},
        {"op": "insert", "table": "refunds", "values": {"invoice_id": 999999, "amount": "1.005"}},
        {"op": "update", "table": "invoices", "key": {"id": 99999}, "values": {"amount": "abc"}},
        {
            "op": "update",
            "table": "invoices",
            "key": {"number": "INV-1"},
            "values": {"status": None},
        },
    )
    assert problems_of(bad, demo_catalogue, demo_engine) == [
        (0, "customers", "password_hash", "denied_column"),
        (0, "customers", "emial", "unknown_column"),
        (0, "customers", "created_at", "bad_value"),
        (1, "custmers", None, "unknown_table"),
        (2, "refunds", "amount", "bad_value"),
        (2, "refunds", "reason", "not_null"),
        (2, "refunds", "status", "not_null"),
        (2, "refunds", "created_at", "not_null"),
        (2, "refunds", "invoice_id", "fk_missing"),
        (3, "invoices", "amount", "bad_value"),
        (3, "invoices", None, "row_missing"),
        (4, "invoices", None, "bad_key"),
        (4, "invoices", "status", "not_null"),
    ]


def test_messages_help_the_model(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    bad = proposal(
        {"op": "update", "table": "custmers", "key": {"id": 1}, "values": {"name": "x"}},
        {"op": "update", "table": "customers", "key": {"id": 1}, "values": {"emial": "x"}},
    )
    with pytest.raises(ProposalInvalid) as info:
        validate(bad, demo_catalogue, demo_engine)
    text = info.value.for_llm()
    assert "did you mean 'customers'?" in text
    assert "did you mean 'email'?" in text
    assert "nothing was written" in str(info.value)
    first = info.value.problems[0]
    assert Problem.from_json(first.to_json()) == first


# ---- One problem at a time --------------------------------------------------------------------


CASES: list[tuple[str, dict[str, Any], list[tuple[str | None, str]]]] = [
    (
        "denied table",
        {"op": "delete", "table": "secrets", "key": {"id": 1}},
        [(None, "denied_table")],
    ),
    (
        "key is not the primary key",
        {"op": "delete", "table": "customers", "key": {"email": "a@example.com"}},
        [(None, "bad_key")],
    ),
    (
        "key has an extra column",
        {"op": "delete", "table": "customers", "key": {"id": 1, "email": "x"}},
        [(None, "bad_key")],
    ),
    ("missing key", {"op": "delete", "table": "customers"}, [(None, "bad_key")]),
    ("null key", {"op": "delete", "table": "customers", "key": {"id": None}}, [("id", "bad_key")]),
    (
        "bad key value",
        {"op": "delete", "table": "plans", "key": {"id": "one"}},
        [("id", "bad_value")],
    ),
    (
        "update without values",
        {"op": "update", "table": "plans", "key": {"id": 1}},
        [(None, "bad_shape")],
    ),
    (
        "delete with values",
        {"op": "delete", "table": "refunds", "key": {"id": 1}, "values": {"note": "x"}},
        [(None, "bad_shape")],
    ),
    (
        "changing a primary key",
        {"op": "update", "table": "plans", "key": {"id": 1}, "values": {"id": 99}},
        [("id", "bad_shape")],
    ),
    (
        "update to null",
        {"op": "update", "table": "plans", "key": {"id": 1}, "values": {"name": None}},
        [("name", "not_null")],
    ),
    (
        "row to update is missing",
        {"op": "update", "table": "plans", "key": {"id": 77}, "values": {"name": "x"}},
        [(None, "row_missing")],
    ),
    (
        "insert over an existing row",
        {
            "op": "insert",
            "table": "plans",
            "key": {"id": 1},
            "values": {"code": "x", "name": "x", "billing_interval": "month", "price": 1},
        },
        [(None, "row_exists")],
    ),
    (
        "foreign key to nowhere",
        {"op": "update", "table": "subscriptions", "key": {"id": 1}, "values": {"plan_id": 99}},
        [("plan_id", "fk_missing")],
    ),
    (
        "delete of a referenced row",
        {"op": "delete", "table": "plans", "key": {"id": 3}},
        [(None, "fk_referenced")],
    ),
    (
        "too long",
        {"op": "update", "table": "customers", "key": {"id": 1}, "values": {"country": "USA"}},
        [("country", "bad_value")],
    ),
]


@pytest.mark.parametrize(("case", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_single_problems(
    case: str,
    change: dict[str, Any],
    expected: list[tuple[str | None, str]],
    demo_engine: sa.Engine,
) -> None:
    with demo_engine.begin() as conn:
        conn.exec_driver_sql("create table secrets (id integer primary key, v text)")
    catalogue = reflect_catalogue(demo_engine, deny=[*DEFAULT_DENY, "secrets"])
    found = problems_of(proposal(change), catalogue, demo_engine)
    assert [(column, code) for _, _, column, code in found] == expected
    assert all(index == 0 for index, *_ in found)


def test_empty_and_oversized_proposals(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    assert problems_of(proposal(), demo_catalogue, demo_engine) == [(None, None, None, "bad_shape")]
    many = [
        {"op": "update", "table": "plans", "key": {"id": 1}, "values": {"name": f"n{i}"}}
        for i in range(3)
    ]
    with statements(demo_engine) as seen:
        found = problems_of(proposal(*many), demo_catalogue, demo_engine, max_rows=2)
    assert found[0] == (None, None, None, "too_many_rows")
    assert ("plans", "duplicate_row") in {(t, c) for _, t, _, c in found}
    assert seen == []  # over the limit: the database is not asked anything


def test_duplicate_rows_are_refused(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    twice = proposal(
        {"op": "update", "table": "plans", "key": {"id": 1}, "values": {"name": "a"}},
        {"op": "delete", "table": "plans", "key": {"id": "1"}},
    )
    found = problems_of(twice, demo_catalogue, demo_engine)
    assert (1, "plans", None, "duplicate_row") in found


def test_references_satisfied_within_the_proposal(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    new_plan = {
        "op": "insert",
        "table": "plans",
        "key": {"id": 50},
        "values": {"code": "enterprise", "name": "Enterprise", "billing_interval": "year"}
        | {"price": "5000"},
    }
    move = {"op": "update", "table": "subscriptions", "key": {"id": 1}, "values": {"plan_id": 50}}
    validate(proposal(new_plan, move), demo_catalogue, demo_engine)
    # A reference to a row deleted by the same proposal points nowhere.
    drop_plan = {"op": "delete", "table": "plans", "key": {"id": 2}}
    onto_dropped = {**move, "values": {"plan_id": 2}}
    found = problems_of(proposal(drop_plan, onto_dropped), demo_catalogue, demo_engine)
    assert (1, "subscriptions", "plan_id", "fk_missing") in found


def test_delete_with_its_dependants(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    with demo_engine.connect() as conn:
        refund_ids = conn.execute(sa.text("select id from refunds where invoice_id = 4")).all()
    assert refund_ids
    deletes = [{"op": "delete", "table": "refunds", "key": {"id": r.id}} for r in refund_ids]
    invoice = {"op": "delete", "table": "invoices", "key": {"id": 4}}
    problems = problems_of(proposal(invoice), demo_catalogue, demo_engine)
    assert problems == [(0, "invoices", None, "fk_referenced")]
    validate(proposal(*deletes, invoice), demo_catalogue, demo_engine)


def test_references_from_hidden_tables_are_not_named(demo_engine: sa.Engine) -> None:
    catalogue = reflect_catalogue(demo_engine, deny=[*DEFAULT_DENY, "refunds"])
    with pytest.raises(ProposalInvalid) as info:
        validate(
            proposal({"op": "delete", "table": "invoices", "key": {"id": 4}}),
            catalogue,
            demo_engine,
        )
    message = info.value.problems[0].message
    assert "a table the agent cannot see" in message and "refunds" not in message


def test_generated_columns_are_read_only(make_db: MakeDb) -> None:
    engine = make_db(
        "create table t (id integer primary key, n integer, twice integer generated always as"
        " (n * 2))"
    )
    found = problems_of(
        proposal({"op": "insert", "table": "t", "values": {"n": 1, "twice": 2}}),
        reflect_catalogue(engine),
        engine,
    )
    assert found == [(0, "t", "twice", "read_only_column")]


def test_hidden_required_column_blocks_inserts(demo_engine: sa.Engine) -> None:
    catalogue = reflect_catalogue(demo_engine, allow=["customers.email"])
    found = problems_of(
        proposal({"op": "insert", "table": "customers", "values": {"email": "a@b.c"}}),
        catalogue,
        demo_engine,
    )
    assert found == [(0, "customers", None, "bad_shape")]


def test_without_a_target_only_the_catalogue_is_checked(demo_catalogue: Catalogue) -> None:
    missing_row = proposal(
        {"op": "update", "table": "plans", "key": {"id": 999}, "values": {"name": "x"}}
    )
    result = validate(missing_row, demo_catalogue, None)
    assert not result.checked_database


def test_validation_sees_the_callers_transaction(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    move = proposal(
        {"op": "update", "table": "subscriptions", "key": {"id": 1}, "values": {"plan_id": 7}}
    )
    with demo_engine.connect() as conn, conn.begin() as txn:
        conn.execute(
            sa.text(
                "insert into plans (id, code, name, billing_interval, price)"
                " values (7, 'x', 'X', 'month', 1)"
            )
        )
        validate(move, demo_catalogue, conn)
        txn.rollback()
    with pytest.raises(ProposalInvalid):
        validate(move, demo_catalogue, demo_engine)


# ---- Injection --------------------------------------------------------------------------------

INJECTIONS = [
    "1; DROP TABLE customers",
    "1 OR 1=1",
    "'; DELETE FROM invoices; --",
    'Robert"); DROP TABLE refunds;--',
    "1) UNION SELECT password_hash FROM customers --",
]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_strings_are_only_ever_data(
    attack: str, demo_catalogue: Catalogue, demo_engine: sa.Engine, demo_path: Path
) -> None:
    before = file_hash(demo_path)
    as_number = proposal(
        {"op": "update", "table": "invoices", "key": {"id": attack}, "values": {"amount": attack}},
        {"op": "update", "table": "subscriptions", "key": {"id": 1}, "values": {"plan_id": attack}},
    )
    found = problems_of(as_number, demo_catalogue, demo_engine)
    assert found == [
        (0, "invoices", "id", "bad_value"),
        (0, "invoices", "amount", "bad_value"),
        (1, "subscriptions", "plan_id", "bad_value"),
    ]
    as_text = proposal(
        {"op": "update", "table": "customers", "key": {"id": 17}, "values": {"company": attack}},
        {"op": "update", "table": "refunds", "key": {"id": 1}, "values": {"note": attack}},
    )
    with statements(demo_engine) as seen:
        result = validate(as_text, demo_catalogue, demo_engine)
    assert result.changes[0].values["company"] == attack
    assert result.changes[1].values["note"] == attack
    assert seen and all(attack not in statement for statement, _ in seen)
    assert all(statement.lstrip().upper().startswith("SELECT") for statement, _ in seen)
    assert file_hash(demo_path) == before


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_in_names_is_an_unknown_name(
    attack: str, demo_catalogue: Catalogue, demo_engine: sa.Engine, demo_path: Path
) -> None:
    before = file_hash(demo_path)
    bad = proposal(
        {"op": "delete", "table": attack, "key": {"id": 1}},
        {"op": "update", "table": "customers", "key": {"id": 1}, "values": {attack: "x"}},
        {"op": "delete", "table": "customers", "key": {attack: 1}},
    )
    with statements(demo_engine) as seen:
        found = problems_of(bad, demo_catalogue, demo_engine)
    assert found[:2] == [
        (0, attack, None, "unknown_table"),
        (1, "customers", attack, "unknown_column"),
    ]
    assert (2, "customers", None, "bad_key") in found
    assert all(attack not in statement for statement, _ in seen)
    assert file_hash(demo_path) == before


def test_text_keys_are_bound_parameters(make_db: MakeDb, tmp_path: Path) -> None:
    engine = make_db(
        "create table tags (name text primary key, note text)",
        "insert into tags values ('a', 'x')",
    )
    catalogue = reflect_catalogue(engine)
    attack = "a' OR '1'='1"
    with statements(engine) as seen:
        found = problems_of(
            proposal({"op": "delete", "table": "tags", "key": {"name": attack}}), catalogue, engine
        )
    assert found == [(0, "tags", None, "row_missing")]
    assert any(attack in str(params) for _, params in seen)
    assert all(attack not in statement for statement, _ in seen)


# ---- Off the event loop, on both dialects -----------------------------------------------------


async def test_validate_async(async_demo: AsyncEngine) -> None:
    catalogue = await reflect_catalogue_async(async_demo, allow=DEMO_ALLOW, deny=DEFAULT_DENY)
    result = await validate_async(proposal(REFUND_INSERT, ANNUAL), catalogue, async_demo)
    assert result.changes[0].values["amount"] == Decimal("20.00")
    bad = proposal(
        {"op": "update", "table": "subscriptions", "key": {"id": 1}, "values": {"plan_id": 99}},
        {"op": "update", "table": "plans", "key": {"id": 77}, "values": {"name": "x"}},
        {"op": "delete", "table": "plans", "key": {"id": 3}},
    )
    with pytest.raises(ProposalInvalid) as info:
        await validate_async(bad, catalogue, async_demo)
    assert [p.code for p in info.value.problems] == ["fk_missing", "row_missing", "fk_referenced"]


async def test_validate_async_with_a_sync_engine_uses_a_thread(
    demo_catalogue: Catalogue, demo_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = validation_module.validate

    def spy(*args: Any, **kwargs: Any) -> ValidatedProposal:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(validation_module, "validate", spy)
    await validate_async(proposal(REFUND_INSERT), demo_catalogue, demo_engine)
    assert threads and threads[0] != threading.get_ident()
