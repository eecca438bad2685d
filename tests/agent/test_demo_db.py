from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
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
    create_demo_db,
    demo_rows,
    reflect_catalogue,
)
from tests.agent.helpers import DEMO_TODAY


def dump(path: Path) -> dict[str, list[Any]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return {
                table: [
                    tuple(r) for r in conn.exec_driver_sql(f"select * from {table} order by id")
                ]
                for table in DEMO_ALLOW
            }
    finally:
        engine.dispose()


def test_size_and_speed(tmp_path: Path) -> None:
    start = time.perf_counter()
    create_demo_db(tmp_path / "demo.db")
    elapsed = time.perf_counter() - start
    counts = {table: len(rows) for table, rows in dump(tmp_path / "demo.db").items()}
    assert counts["plans"] == 6 and counts["customers"] == 1500 and counts["invoices"] == 6000
    assert 9_000 <= sum(counts.values()) <= 11_000
    assert elapsed < 4.0, f"creating the demo database took {elapsed:.2f} s"


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    create_demo_db(tmp_path / "a.db", today=DEMO_TODAY)
    create_demo_db(tmp_path / "b.db", today=DEMO_TODAY)
    create_demo_db(tmp_path / "c.db", seed=7, today=DEMO_TODAY)
    assert dump(tmp_path / "a.db") == dump(tmp_path / "b.db")
    assert dump(tmp_path / "a.db")["customers"] != dump(tmp_path / "c.db")["customers"]


def dates(rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, int, str], date]:
    """Every date and timestamp of *rows*, by (table, id, column)."""
    return {
        (table, row["id"], name): value
        for table, items in rows.items()
        for row in items
        for name, value in row.items()
        if isinstance(value, date)
    }


def test_the_same_today_builds_the_same_rows_and_another_today_moves_only_the_dates() -> None:
    assert demo_rows(today=DEMO_TODAY) == demo_rows(today=DEMO_TODAY)
    later = DEMO_TODAY + timedelta(days=500)
    moved, base = demo_rows(today=later), demo_rows(today=DEMO_TODAY)
    before, after = dates(base), dates(moved)
    assert before.keys() == after.keys() and len(before) > 10_000
    assert {after[k] - before[k] for k in before} == {timedelta(days=500)}
    # Ids, statuses and amounts do not depend on the day: the demo requests hold on any day.
    undated = {
        table: [{k: v for k, v in row.items() if not isinstance(v, date)} for row in rows]
        for table, rows in base.items()
    }
    assert undated == {
        table: [{k: v for k, v in row.items() if not isinstance(v, date)} for row in rows]
        for table, rows in moved.items()
    }


@pytest.mark.parametrize("today", [DEMO_TODAY, date(2031, 2, 28)])
def test_dates_are_relative_to_today(today: date) -> None:
    rows = demo_rows(today=today)
    live = [s for s in rows["subscriptions"] if s["status"] != "canceled"]
    # Every live subscription renews after today, within a year; nothing started after today.
    assert all(today < s["current_period_end"] <= today + timedelta(days=366) for s in live)
    assert max(s["started_on"] for s in rows["subscriptions"]) <= today
    assert max(i["issued_on"] for i in rows["invoices"]) == today
    assert max(c["created_at"] for c in rows["customers"]) < datetime.combine(
        today, datetime.min.time()
    )
    sub = [s for s in rows["subscriptions"] if s["customer_id"] == 58][-1]
    assert sub["status"] == "active" and sub["current_period_end"] > today
    # Nothing was paid, refunded or cancelled after today.
    paid = [i["paid_at"] for i in rows["invoices"] if i["paid_at"] is not None]
    assert max(paid).date() <= today
    assert max(r["created_at"] for r in rows["refunds"]).date() <= today
    assert max(s["canceled_on"] or today for s in rows["subscriptions"]) <= today


def test_the_default_today_is_the_current_utc_date() -> None:
    first = datetime.now(UTC).date()
    rows = demo_rows()
    last = datetime.now(UTC).date()  # midnight may pass in between
    assert max(i["issued_on"] for i in rows["invoices"]) in (first, last)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        create_demo_db(path)
    assert path.read_text() == "keep me"
    create_demo_db(path, overwrite=True)
    assert dump(path)["plans"]
    assert not list(tmp_path.glob("*.partial"))


def test_foreign_keys_hold(demo_engine: sa.Engine) -> None:
    with demo_engine.connect() as conn:
        assert conn.exec_driver_sql("pragma foreign_key_check").all() == []
        orphans = conn.exec_driver_sql(
            "select count(*) from invoices i join subscriptions s on s.id = i.subscription_id"
            " where s.customer_id != i.customer_id"
        ).scalar()
        assert orphans == 0


def test_values_are_realistic() -> None:
    rows = demo_rows()
    emails = [c["email"] for c in rows["customers"]]
    assert len(set(emails)) == len(emails) and all("@" in e for e in emails)
    invoices = {i["id"]: i for i in rows["invoices"]}
    for refund in rows["refunds"]:
        invoice = invoices[refund["invoice_id"]]
        assert invoice["status"] == "paid"
        assert Decimal("0") < refund["amount"] <= invoice["amount"]
        assert refund["created_at"] > invoice["paid_at"]
    for invoice in rows["invoices"]:
        assert (invoice["paid_at"] is not None) == (invoice["status"] == "paid")
        assert invoice["due_on"] > invoice["issued_on"]
    for sub in rows["subscriptions"]:
        assert (sub["canceled_on"] is not None) == (sub["status"] == "canceled")
        assert sub["current_period_end"] > sub["started_on"]
    statuses = {c["status"] for c in rows["customers"]}
    assert statuses == {"active", "churned"}
    hashes = [c["password_hash"] for c in rows["customers"] if c["password_hash"]]
    assert hashes and all(h.startswith("pbkdf2_sha256$") for h in hashes)


@pytest.mark.parametrize("seed", [1042, 1, 2, 3])
def test_the_issue_examples_hold_for_any_seed(seed: int) -> None:
    rows = demo_rows(seed)
    invoice = rows["invoices"][1041]
    assert invoice["id"] == 1042 and invoice["status"] == "paid" and invoice["amount"] >= 20
    assert not [r for r in rows["refunds"] if r["invoice_id"] == 1042]
    customer = rows["customers"][16]
    assert customer["id"] == 17 and customer["status"] == "active"
    subs = [s for s in rows["subscriptions"] if s["customer_id"] == 17]
    assert subs[-1]["status"] == "active" and subs[-1]["plan_id"] == 3
    annual = [p for p in rows["plans"] if p["code"] == "pro-annual"]
    assert annual and annual[0]["billing_interval"] == "year"


def test_password_hashes_are_denied_by_default(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    assert "customers.password_hash" in DEFAULT_DENY
    assert demo_catalogue.is_hidden_column("customers", "password_hash")
    assert "password" not in demo_catalogue.describe()
    with demo_engine.connect() as conn:
        hashes = conn.exec_driver_sql("select count(password_hash) from customers").scalar()
    assert hashes and hashes > 1000
    # Without the deny-list the column would be visible: the default is what hides it.
    assert "password_hash" in reflect_catalogue(demo_engine)["customers"].column_names


async def test_postgresql_sequences_follow_the_demo_rows(async_demo: AsyncEngine) -> None:
    async with async_demo.begin() as conn:
        new_id = (
            await conn.execute(
                sa.text(
                    "insert into plans (code, name, billing_interval, price)"
                    " values ('x', 'X', 'month', 1) returning id"
                )
            )
        ).scalar()
    assert new_id == 7
