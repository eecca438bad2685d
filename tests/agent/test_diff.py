from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hitl_desktop.agent import (
    DEFAULT_DENY,
    DEMO_ALLOW,
    Catalogue,
    Diff,
    ProposalInvalid,
    diff_proposal,
    diff_proposal_async,
    diffs_from_json,
    diffs_to_json,
    find_conflicts,
    fingerprint,
    reflect_catalogue,
    reflect_catalogue_async,
    validate,
    validate_async,
)
from tests.agent.helpers import MakeDb, proposal


def diffs_for(catalogue: Catalogue, engine: sa.Engine, *changes: dict[str, Any]) -> list[Diff]:
    return diff_proposal(validate(proposal(*changes), catalogue, engine), engine)


MOVE = {"op": "update", "table": "subscriptions", "key": {"id": 20}, "values": {"plan_id": 4}}
REFUND = {
    "op": "insert",
    "table": "refunds",
    "values": {
        "invoice_id": 1042,
        "amount": "20",
        "reason": "requested_by_customer",
        "status": "pending",
        "created_at": "2025-07-01T10:00:00",
    },
}


def test_update_diff(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    (diff,) = diffs_for(demo_catalogue, demo_engine, MOVE)
    assert diff.op == "update" and diff.table == "subscriptions" and diff.key == {"id": 20}
    assert diff.before == {
        "id": 20,
        "customer_id": 17,
        "plan_id": 3,
        "status": "active",
        "started_on": "2024-07-02",
        "current_period_end": "2025-08-01",
        "canceled_on": None,
    }
    assert diff.after == {**diff.before, "plan_id": 4}
    assert diff.changed == ("plan_id",)
    canonical = json.dumps(diff.before, sort_keys=True, separators=(",", ":"))
    assert diff.fingerprint == hashlib.sha256(canonical.encode()).hexdigest()
    assert diff.fingerprint == fingerprint(diff.before)


def test_insert_and_delete_diffs(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    insert, delete = diffs_for(
        demo_catalogue, demo_engine, REFUND, {"op": "delete", "table": "refunds", "key": {"id": 1}}
    )
    assert insert.before is None and insert.key == {}
    assert insert.after == {
        "invoice_id": 1042,
        "amount": "20.00",
        "reason": "requested_by_customer",
        "status": "pending",
        "created_at": "2025-07-01T10:00:00",
    }
    assert insert.changed == tuple(insert.after)
    assert insert.fingerprint == fingerprint(None)
    assert delete.after is None and delete.before is not None
    assert delete.before["id"] == 1 and delete.changed == tuple(delete.before)


def test_unchanged_values_are_not_listed(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    same = {"op": "update", "table": "plans", "key": {"id": 3}, "values": {"price": "29"}}
    also = {**MOVE, "values": {"plan_id": 3, "status": "past_due"}}
    plan, sub = diffs_for(demo_catalogue, demo_engine, same, also)
    assert plan.changed == () and plan.before == plan.after
    assert sub.changed == ("status",)


def test_hidden_columns_are_neither_shown_nor_fingerprinted(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    change = {"op": "update", "table": "customers", "key": {"id": 17}, "values": {"company": None}}
    (diff,) = diffs_for(demo_catalogue, demo_engine, change)
    assert diff.before is not None and "password_hash" not in diff.before
    assert "pbkdf2" not in json.dumps(diff.to_json())
    with demo_engine.begin() as conn:
        conn.execute(sa.text("update customers set password_hash = 'new' where id = 17"))
    with demo_engine.connect() as conn:
        assert find_conflicts(conn, demo_catalogue, [diff]) == []


def test_diffs_are_json_and_round_trip(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    diffs = diffs_for(
        demo_catalogue,
        demo_engine,
        MOVE,
        REFUND,
        {"op": "delete", "table": "refunds", "key": {"id": 2}},
    )
    text = json.dumps(diffs_to_json(diffs), allow_nan=False)
    assert diffs_from_json(json.loads(text)) == diffs


def test_from_json_refuses_unknown_or_missing_fields(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    (diff,) = diffs_for(demo_catalogue, demo_engine, MOVE)
    with pytest.raises(ValueError, match="exactly the fields"):
        Diff.from_json({**diff.to_json(), "output": 1})
    data = diff.to_json()
    del data["fingerprint"]
    with pytest.raises(ValueError, match="exactly the fields"):
        Diff.from_json(data)
    with pytest.raises(ValueError, match="unknown op"):
        Diff.from_json({**diff.to_json(), "op": "upsert"})


def test_one_query_per_table(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    changes = [
        {"op": "update", "table": "plans", "key": {"id": n}, "values": {"active": False}}
        for n in range(1, 6)
    ] + [
        {"op": "update", "table": "customers", "key": {"id": n}, "values": {"company": "X"}}
        for n in range(1, 4)
    ]
    validated = validate(proposal(*changes), demo_catalogue, demo_engine)
    seen: list[str] = []
    sa.event.listen(demo_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    diffs = diff_proposal(validated, demo_engine)
    assert len(diffs) == 8
    assert len(seen) == 2 and all(s.lstrip().upper().startswith("SELECT") for s in seen)


def test_a_row_gone_since_validation(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    validated = validate(proposal(MOVE), demo_catalogue, demo_engine)
    with demo_engine.begin() as conn:
        conn.execute(sa.text("delete from subscriptions where id = 20"))
    with pytest.raises(ProposalInvalid) as info:
        diff_proposal(validated, demo_engine)
    assert [p.code for p in info.value.problems] == ["row_missing"]


def test_conflicts(demo_catalogue: Catalogue, demo_engine: sa.Engine) -> None:
    plan = {"op": "update", "table": "plans", "key": {"id": 1}, "values": {"name": "Starter"}}
    new_plan = {
        "op": "insert",
        "table": "plans",
        "key": {"id": 9},
        "values": {"code": "x", "name": "X", "billing_interval": "month", "price": 1},
    }
    drop = {"op": "delete", "table": "refunds", "key": {"id": 3}}
    stored = diffs_from_json(
        json.loads(
            json.dumps(
                diffs_to_json(
                    diffs_for(demo_catalogue, demo_engine, plan, MOVE, new_plan, drop, REFUND)
                )
            )
        )
    )
    with demo_engine.connect() as conn:
        assert find_conflicts(conn, demo_catalogue, stored) == []
    with demo_engine.begin() as conn:
        conn.execute(sa.text("update plans set price = 10, active = 0 where id = 1"))
        conn.execute(sa.text("delete from subscriptions where id = 20"))
        conn.execute(
            sa.text(
                "insert into plans (id, code, name, billing_interval, price)"
                " values (9, 'y', 'Y', 'month', 2)"
            )
        )
    with demo_engine.connect() as conn:
        conflicts = find_conflicts(conn, demo_catalogue, stored)
    assert [(c.index, c.table) for c in conflicts] == [
        (0, "plans"),
        (1, "subscriptions"),
        (2, "plans"),
    ]
    assert conflicts[0].columns == {"price": ("9.00", "10.00"), "active": (True, False)}
    assert "deleted" in conflicts[1].message and conflicts[1].columns == {}
    assert "created" in conflicts[2].message
    json.dumps([c.to_json() for c in conflicts])


def test_conflict_keys_of_every_kind_round_trip(make_db: MakeDb) -> None:
    engine = make_db(
        "create table daily (day date, region text, amount numeric(10, 2), note text,"
        " primary key (day, region))",
        "insert into daily values ('2024-05-01', 'eu', 12.5, null)",
    )
    catalogue = reflect_catalogue(engine)
    change = {
        "op": "update",
        "table": "daily",
        "key": {"day": "2024-05-01", "region": "eu"},
        "values": {"note": "checked"},
    }
    (diff,) = diffs_for(catalogue, engine, change)
    assert diff.key == {"day": "2024-05-01", "region": "eu"}
    assert diff.before == {"day": "2024-05-01", "region": "eu", "amount": "12.50", "note": None}
    stored = Diff.from_json(json.loads(json.dumps(diff.to_json())))
    with engine.connect() as conn:
        assert find_conflicts(conn, catalogue, [stored]) == []
    with engine.begin() as conn:
        conn.execute(sa.text("update daily set amount = 13 where region = 'eu'"))
    with engine.connect() as conn:
        (conflict,) = find_conflicts(conn, catalogue, [stored])
    assert conflict.columns == {"amount": ("12.50", "13.00")}


def test_a_catalogue_without_the_table_is_a_conflict(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    (diff,) = diffs_for(demo_catalogue, demo_engine, MOVE)
    narrower = reflect_catalogue(demo_engine, allow=["plans"])
    with demo_engine.connect() as conn:
        (conflict,) = find_conflicts(conn, narrower, [diff])
    assert "no longer" in conflict.message


async def test_diff_async(async_demo: AsyncEngine) -> None:
    catalogue = await reflect_catalogue_async(async_demo, allow=DEMO_ALLOW, deny=DEFAULT_DENY)
    validated = await validate_async(proposal(MOVE, REFUND), catalogue, async_demo)
    move, refund = await diff_proposal_async(validated, async_demo)
    assert move.before is not None and move.before["plan_id"] == 3
    assert move.before["started_on"] == "2024-07-02" and move.changed == ("plan_id",)
    assert refund.after is not None and refund.after["amount"] == "20.00"
    async with async_demo.connect() as conn:
        conflicts = await conn.run_sync(lambda c: find_conflicts(c, catalogue, [move, refund]))
    assert conflicts == []
