from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hitl_desktop.agent import (
    DEFAULT_DENY,
    DEMO_ALLOW,
    Catalogue,
    CatalogueError,
    column_kind,
    reflect_catalogue,
    reflect_catalogue_async,
)
from hitl_desktop.agent import catalogue as catalogue_module
from tests import pg

MakeDb = Callable[..., sa.Engine]

ALL_TYPES = """
create table things (
    id integer primary key,
    small smallint not null,
    big bigint,
    ratio real,
    score double precision,
    price numeric(10, 2) not null default 0,
    code varchar(12) not null,
    body text,
    flag boolean not null default 1,
    born date,
    seen datetime,
    doc json,
    raw blob,
    at_time time,
    loose money
)
"""


def test_types_map_to_simple_kinds(make_db: MakeDb) -> None:
    cat = reflect_catalogue(make_db(ALL_TYPES))
    kinds = {col.name: col.kind for col in cat["things"].columns}
    assert kinds == {
        "id": "integer",
        "small": "integer",
        "big": "integer",
        "ratio": "float",
        "score": "float",
        "price": "decimal",
        "code": "text",
        "body": "text",
        "flag": "boolean",
        "born": "date",
        "seen": "datetime",
        "doc": "json",
        "raw": "other",
        "at_time": "other",
        "loose": "decimal",  # SQLite's numeric affinity for an unknown type name
    }


def test_column_kind_of_generic_types() -> None:
    assert column_kind(sa.Boolean()) == "boolean"
    assert column_kind(sa.BigInteger()) == "integer"
    assert column_kind(sa.Float()) == "float"
    assert column_kind(sa.Numeric(10, 2)) == "decimal"
    assert column_kind(sa.Numeric(10, 2, asdecimal=False)) == "float"
    assert column_kind(sa.DateTime(timezone=True)) == "datetime"
    assert column_kind(sa.Date()) == "date"
    assert column_kind(sa.JSON()) == "json"
    assert column_kind(sa.Enum("a", "b", name="ab")) == "text"
    assert column_kind(sa.LargeBinary()) == "other"
    assert column_kind(sa.Uuid()) == "other"


def test_column_details(make_db: MakeDb) -> None:
    things = reflect_catalogue(make_db(ALL_TYPES))["things"]
    col = {c.name: c for c in things.columns}
    assert things.primary_key == ("id",)
    assert col["id"].autoincrement and col["id"].primary_key and not col["id"].nullable
    assert not col["id"].required
    assert col["small"].required and not col["small"].nullable
    assert col["big"].nullable and not col["big"].required
    assert col["price"].has_default and not col["price"].required
    assert (col["price"].precision, col["price"].scale) == (10, 2)
    assert col["code"].max_length == 12 and col["code"].required
    assert col["body"].max_length is None
    assert col["raw"].kind == "other" and not col["raw"].writable


def test_only_integer_primary_key_is_a_rowid_alias(make_db: MakeDb) -> None:
    engine = make_db(
        "create table a (id integer primary key, v text)",
        "create table b (id int primary key, v text)",
        "create table c (id bigint primary key, v text)",
    )
    cat = reflect_catalogue(engine)
    assert cat["a"].column("id").autoincrement  # type: ignore[union-attr]
    assert not cat["b"].column("id").autoincrement  # type: ignore[union-attr]
    assert not cat["c"].column("id").autoincrement  # type: ignore[union-attr]
    assert cat["b"].column("id").required  # type: ignore[union-attr]


def test_composite_keys_foreign_keys_and_generated_columns(make_db: MakeDb) -> None:
    engine = make_db(
        "create table parent (a integer, b text, primary key (a, b))",
        "create table child (id integer primary key, pa integer, pb text, n integer,"
        " twice integer generated always as (n * 2),"
        " foreign key (pa, pb) references parent (a, b) on delete cascade)",
    )
    cat = reflect_catalogue(engine)
    assert cat["parent"].primary_key == ("a", "b")
    (fk,) = cat["child"].foreign_keys
    assert (fk.table, fk.columns, fk.ref_table, fk.ref_columns) == (
        "child",
        ("pa", "pb"),
        "parent",
        ("a", "b"),
    )
    assert fk.on_delete == "CASCADE"
    assert cat.inbound_foreign_keys("parent") == (fk,)
    twice = cat["child"].column("twice")
    assert twice is not None and twice.generated and not twice.writable
    assert "foreign key (pa, pb) -> parent(a, b)" in cat.describe()


def test_deny_hides_columns_and_tables(demo_engine: sa.Engine) -> None:
    cat = reflect_catalogue(demo_engine, deny=[*DEFAULT_DENY, "refunds"])
    assert "password_hash" not in cat["customers"].column_names
    assert cat.is_hidden_column("customers", "password_hash")
    assert cat.get("refunds") is None and cat.is_hidden_table("refunds")
    assert "password" not in cat.describe()
    assert "password" not in cat.describe_json()
    assert "refunds" not in cat.describe()
    # Hidden tables are still known for foreign-key checks, never shown.
    assert cat.reflected("refunds")
    assert [fk.table for fk in cat.inbound_foreign_keys("invoices")] == ["refunds"]


def test_allow_list_of_tables_and_columns(demo_engine: sa.Engine) -> None:
    cat = reflect_catalogue(demo_engine, allow=["invoices", "customers.email"])
    assert set(cat.tables) == {"customers", "invoices"}
    # Listing columns shows only those, plus the primary key that addresses the rows.
    assert cat["customers"].column_names == ("id", "email")
    assert cat["customers"].hidden_required  # name, country, created_at are required
    assert "no inserts" in cat.describe()
    assert cat.is_hidden_table("subscriptions")


def test_deny_wins_over_allow(demo_engine: sa.Engine) -> None:
    cat = reflect_catalogue(demo_engine, allow=["customers"], deny=["customers.password_hash"])
    assert "password_hash" not in cat["customers"].column_names
    cat = reflect_catalogue(demo_engine, allow=["customers"], deny=["customers"])
    assert cat.tables == {}


def test_allow_list_typos_raise(demo_engine: sa.Engine) -> None:
    with pytest.raises(CatalogueError, match="custmers"):
        reflect_catalogue(demo_engine, allow=["custmers"])
    with pytest.raises(CatalogueError, match="emial"):
        reflect_catalogue(demo_engine, allow=["customers.emial"])


def test_deny_list_typos_raise_naming_what_exists(demo_engine: sa.Engine) -> None:
    with pytest.raises(CatalogueError, match=r"'customer\.password_hash' matches nothing") as err:
        reflect_catalogue(demo_engine, deny=["customer.password_hash"])
    assert "'customers'" in str(err.value) and "'invoices'" in str(err.value)
    with pytest.raises(CatalogueError, match=r"'customers\.pasword' matches nothing") as err:
        reflect_catalogue(demo_engine, deny=["customers.pasword"])
    assert "'password_hash'" in str(err.value)
    with pytest.raises(CatalogueError, match="'secrets' matches nothing"):
        reflect_catalogue(demo_engine, deny=["secrets"])


USERS = 'create table "Users" (id integer primary key, name text, "Secret" text)'


@pytest.mark.parametrize(
    "entry",
    ["users.secret", "USERS.SECRET", "main.users.secret", '"Users"."Secret"', "Users.Secret"],
)
def test_deny_matches_names_as_sqlite_reads_them(make_db: MakeDb, entry: str) -> None:
    cat = reflect_catalogue(make_db(USERS), deny=[entry])
    assert cat["Users"].column_names == ("id", "name")
    assert cat.is_hidden_column("Users", "Secret")
    assert "Secret" not in cat.describe()


@pytest.mark.parametrize("entry", ["users", "main.USERS", '"Users"', 'MAIN."Users"'])
def test_deny_hides_a_table_named_in_another_case_or_with_its_schema(
    make_db: MakeDb, entry: str
) -> None:
    cat = reflect_catalogue(make_db(USERS), deny=[entry])
    assert cat.tables == {} and cat.is_hidden_table("Users")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('"users".secret', "the tables are 'Users'"),
        ('users."secret"', "table 'Users' has columns 'id', 'name', 'Secret'"),
        ("users.password", "'users.password' matches nothing"),
        ("accounts", "'accounts' matches nothing"),
        ("other.users.secret", "the schema reflected is 'main'"),
    ],
)
def test_a_deny_entry_that_matches_nothing_is_an_error(
    make_db: MakeDb, entry: str, message: str
) -> None:
    with pytest.raises(CatalogueError, match="matches nothing") as err:
        reflect_catalogue(make_db(USERS), deny=[entry])
    assert message in str(err.value)
    assert repr(entry) in str(err.value)


@pytest.mark.parametrize("entry", ["users.secret", '"Users".secret', "main.Users.SECRET"])
def test_allow_matches_names_as_sqlite_reads_them(make_db: MakeDb, entry: str) -> None:
    engine = make_db(USERS, "create table notes (id integer primary key, body text)")
    cat = reflect_catalogue(engine, allow=[entry])
    assert set(cat.tables) == {"Users"}
    assert cat["Users"].column_names == ("id", "Secret")


def test_a_two_part_entry_is_read_as_schema_and_table_too(make_db: MakeDb) -> None:
    engine = make_db(USERS, "create table notes (id integer primary key, body text)")
    assert set(reflect_catalogue(engine, allow=["main.users"]).tables) == {"Users"}
    assert set(reflect_catalogue(engine, deny=["main.notes"]).tables) == {"Users"}


def test_a_deny_entry_hides_every_reading_that_exists(make_db: MakeDb) -> None:
    # 'main.notes' is both the table main's column notes and the table notes of schema main.
    engine = make_db(
        "create table main (id integer primary key, notes text, other text)",
        "create table notes (id integer primary key, body text)",
    )
    cat = reflect_catalogue(engine, deny=["main.notes"])
    assert set(cat.tables) == {"main"}
    assert cat["main"].column_names == ("id", "other")
    with pytest.raises(CatalogueError, match="ambiguous"):
        reflect_catalogue(engine, allow=["main.notes"])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('"Users.secret', "unclosed quote"),
        ('"Users"x.secret', "after a closing quote"),
        ('Us"ers', "quote inside a name"),
        ("users..secret", "empty name"),
        ("users.", "ends with a dot"),
        ("", "empty name"),
        ("a.b.c.d", "4 parts"),
    ],
)
def test_malformed_entries_are_refused(make_db: MakeDb, entry: str, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        reflect_catalogue(make_db(USERS), deny=[entry])


def test_a_quote_inside_a_quoted_name_is_doubled(make_db: MakeDb) -> None:
    engine = make_db('create table "say ""hi""" (id integer primary key, "a.b" text, c text)')
    cat = reflect_catalogue(engine, deny=['"say ""hi"""."a.b"'])
    assert cat['say "hi"'].column_names == ("id", "c")


def test_a_list_given_as_one_text_is_refused(make_db: MakeDb) -> None:
    with pytest.raises(CatalogueError, match="list of entries"):
        reflect_catalogue(make_db(USERS), deny="users.secret")


def test_denying_a_primary_key_column_raises(demo_engine: sa.Engine) -> None:
    with pytest.raises(CatalogueError, match="primary-key"):
        reflect_catalogue(demo_engine, deny=["customers.id"])


def test_hitl_tables_are_never_visible(make_db: MakeDb) -> None:
    engine = make_db(
        "create table hitl_applied_writes (run_id text primary key, step integer)",
        "create table notes (id integer primary key, body text)",
    )
    cat = reflect_catalogue(engine, allow=None)
    assert set(cat.tables) == {"notes"}
    assert cat.is_hidden_table("hitl_applied_writes")


def test_catalogue_is_immutable(demo_catalogue: Catalogue) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo_catalogue.dialect = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        demo_catalogue.tables["x"] = demo_catalogue["plans"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo_catalogue["plans"].columns[0].name = "y"  # type: ignore[misc]


def test_describe_for_a_prompt(demo_catalogue: Catalogue) -> None:
    text = demo_catalogue.describe()
    assert "invoices (primary key: id)" in text
    assert "  customer_id integer required -> customers.id" in text
    assert "  amount decimal(10,2) required" in text
    assert "  id integer auto" in text
    assert "  canceled_on date nullable" in text
    data = json.loads(demo_catalogue.describe_json())
    names = [t["name"] for t in data["tables"]]
    assert names == sorted(DEMO_ALLOW)
    invoices = next(t for t in data["tables"] if t["name"] == "invoices")
    amount = next(c for c in invoices["columns"] if c["name"] == "amount")
    assert amount == {
        "name": "amount",
        "kind": "decimal",
        "sql_type": "NUMERIC(10, 2)",
        "nullable": False,
        "required": True,
        "writable": True,
        "precision": 10,
        "scale": 2,
    }
    # Compact: the whole demo catalogue fits a prompt easily.
    assert len(text) < 3000


def test_reflect_from_url_and_connection(demo_path: Path, demo_engine: sa.Engine) -> None:
    by_url = reflect_catalogue(f"sqlite:///{demo_path}", deny=DEFAULT_DENY)
    with demo_engine.connect() as conn:
        by_conn = reflect_catalogue(conn, deny=DEFAULT_DENY)
    assert by_url.to_json() == by_conn.to_json()
    assert by_url.core_table("customers").c.keys()[-1] == "password_hash"
    assert [c.name for c in by_url.visible_columns("customers")][-1] == "created_at"
    with pytest.raises(CatalogueError):
        by_url.core_table("nope")


@pytest.fixture
def pg_users() -> Iterator[sa.Engine]:
    """A fresh PostgreSQL database with a quoted mixed-case table "Users" and a table
    named users, which PostgreSQL keeps apart."""
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_catalogue")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql('create table "Users" (id integer primary key, "Secret" text)')
            conn.exec_driver_sql("create table users (id integer primary key, secret text)")
            conn.exec_driver_sql("create table notes (id integer primary key, body text)")
        yield engine
    finally:
        engine.dispose()
        pg.drop_database(name)


@pytest.mark.parametrize(
    "entry", ["users.secret", "USERS.SECRET", "public.users.secret", "Public.Users.Secret"]
)
def test_postgresql_deny_hides_every_name_an_unquoted_entry_fits(
    pg_users: sa.Engine, entry: str
) -> None:
    cat = reflect_catalogue(pg_users, deny=[entry])
    assert cat["Users"].column_names == ("id",)
    assert cat["users"].column_names == ("id",)
    assert cat.hidden_columns == {"Users.Secret", "users.secret"}


def test_postgresql_quoted_deny_entries_match_exactly(pg_users: sa.Engine) -> None:
    cat = reflect_catalogue(pg_users, deny=['"Users"."Secret"', 'public."users"'])
    assert set(cat.tables) == {"Users", "notes"}
    assert cat["Users"].column_names == ("id",)
    with pytest.raises(CatalogueError, match="matches nothing"):
        reflect_catalogue(pg_users, deny=['"USERS"'])
    with pytest.raises(CatalogueError, match="the schema reflected is 'public'"):
        reflect_catalogue(pg_users, deny=["main.users.secret"])


def test_postgresql_allow_refuses_an_entry_that_fits_two_tables(pg_users: sa.Engine) -> None:
    with pytest.raises(CatalogueError, match="ambiguous") as err:
        reflect_catalogue(pg_users, allow=["users"])
    assert "Users" in str(err.value) and "users" in str(err.value)
    cat = reflect_catalogue(pg_users, allow=['"Users"', "NOTES"])
    assert set(cat.tables) == {"Users", "notes"}


def _record_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    threads: list[int] = []
    real = catalogue_module.reflect_catalogue_conn

    def spy(conn: sa.Connection, **kwargs: Any) -> Catalogue:
        threads.append(threading.get_ident())
        return real(conn, **kwargs)

    monkeypatch.setattr(catalogue_module, "reflect_catalogue_conn", spy)
    return threads


async def test_async_reflection_runs_off_the_event_loop(
    demo_engine: sa.Engine, demo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = _record_threads(monkeypatch)
    expected = reflect_catalogue(demo_engine, deny=DEFAULT_DENY).to_json()
    threads.clear()
    by_engine = await reflect_catalogue_async(demo_engine, deny=DEFAULT_DENY)
    by_url = await reflect_catalogue_async(f"sqlite:///{demo_path}", deny=DEFAULT_DENY)
    assert by_engine.to_json() == by_url.to_json() == expected
    loop_thread = threading.get_ident()
    assert len(threads) == 2 and loop_thread not in threads


async def test_async_reflection_with_an_async_engine(
    async_demo: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = await reflect_catalogue_async(async_demo, allow=DEMO_ALLOW, deny=DEFAULT_DENY)
    assert set(cat.tables) == set(DEMO_ALLOW)
    assert cat["customers"].column("id").autoincrement  # type: ignore[union-attr]
    assert cat["invoices"].column("amount").kind == "decimal"  # type: ignore[union-attr]
    assert cat.dialect in ("sqlite", "postgresql")
    async with async_demo.connect() as conn:
        again = await reflect_catalogue_async(conn, allow=DEMO_ALLOW, deny=DEFAULT_DENY)
    assert again.to_json() == cat.to_json()


async def test_async_reflection_lets_the_loop_run(demo_engine: sa.Engine) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await reflect_catalogue_async(demo_engine)
    finally:
        task.cancel()
    assert ticks > 0


def test_an_aiosqlite_url_cannot_be_used_synchronously(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(TypeError):
        reflect_catalogue(engine)  # type: ignore[arg-type]
