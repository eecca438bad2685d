"""Property tests of validation against random catalogues: random tables, column names, types,
nullability and defaults, reflected from a real (in-memory) SQLite database."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hitl_desktop.agent import (
    Catalogue,
    Proposal,
    ProposalInvalid,
    reflect_catalogue,
    validate,
)

KINDS = ("integer", "float", "decimal", "text", "boolean", "date", "datetime", "json")
DEFAULTS = {
    "integer": "0",
    "float": "0",
    "decimal": "0",
    "text": "''",
    "boolean": "0",
    "date": "'2000-01-01'",
    "datetime": "'2000-01-01 00:00:00'",
    "json": "'{}'",
}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Col:
    name: str
    kind: str
    nullable: bool
    default: bool
    precision: int = 10
    scale: int = 2
    length: int | None = None

    @property
    def required(self) -> bool:
        return not self.nullable and not self.default

    def ddl(self) -> str:
        sql_type = {
            "integer": "INTEGER",
            "float": "REAL",
            "decimal": f"NUMERIC({self.precision}, {self.scale})",
            "text": f"VARCHAR({self.length})" if self.length else "TEXT",
            "boolean": "BOOLEAN",
            "date": "DATE",
            "datetime": "DATETIME",
            "json": "JSON",
        }[self.kind]
        text = f'"{self.name}" {sql_type}'
        if not self.nullable:
            text += " NOT NULL"
        if self.default:
            text += f" DEFAULT {DEFAULTS[self.kind]}"
        return text


# Any identifier, SQL keywords included: names only reach SQL quoted, through the catalogue.
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True).filter(lambda n: n != "id")


@st.composite
def columns(draw: st.DrawFn, name: str) -> Col:
    kind = draw(st.sampled_from(KINDS))
    precision = draw(st.integers(2, 12))
    return Col(
        name=name,
        kind=kind,
        nullable=draw(st.booleans()),
        default=draw(st.booleans()),
        precision=precision,
        scale=draw(st.integers(0, min(4, precision - 1))),
        length=draw(st.none() | st.integers(1, 30)),
    )


@st.composite
def tables(draw: st.DrawFn) -> list[Col]:
    names = draw(st.lists(identifiers, min_size=1, max_size=6, unique=True))
    return [draw(columns(name)) for name in names]


@contextmanager
def database(cols: list[Col]) -> Iterator[tuple[sa.Engine, Catalogue]]:
    engine = sa.create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            body = ", ".join(["id INTEGER PRIMARY KEY", *(c.ddl() for c in cols)])
            conn.exec_driver_sql(f"CREATE TABLE t ({body})")
        yield engine, reflect_catalogue(engine)
    finally:
        engine.dispose()


def valid_values(col: Col) -> st.SearchStrategy[Any]:
    """What a model may send for *col*, in any of the accepted spellings."""
    if col.kind == "integer":
        ints = st.integers(-(2**63), 2**63 - 1)
        return ints | ints.map(str)
    if col.kind == "float":
        floats = st.floats(allow_nan=False, allow_infinity=False)
        return floats | floats.map(repr) | st.integers(-(10**15), 10**15)
    if col.kind == "decimal":
        limit = Decimal(10) ** (col.precision - col.scale) - 1
        decimals = st.decimals(-limit, limit, places=col.scale, allow_nan=False)
        return decimals.map(str) | decimals.map(float).filter(
            lambda f: Decimal(repr(f)) == Decimal(repr(f)).quantize(Decimal(1).scaleb(-col.scale))
        )
    if col.kind == "text":
        return st.text(max_size=col.length or 40).filter(lambda s: "\x00" not in s)
    if col.kind == "boolean":
        return st.booleans() | st.sampled_from(["true", "false", "TRUE", "0", "1", 0, 1])
    if col.kind == "date":
        return st.dates().map(lambda d: d.isoformat())
    if col.kind == "datetime":
        return st.datetimes().map(lambda d: d.isoformat())
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=5,
    )
    return json_values.map(json.dumps) | st.integers(-1000, 1000)


def wrong_values(col: Col) -> st.SearchStrategy[Any]:
    """Values that never fit *col*, SQL-injection strings among them."""
    common = ["abc", "1; DROP TABLE t", "' OR 1=1 --"]
    if col.kind == "integer":
        return st.sampled_from([*common, "1.5", 1.5, True, False, "", "0x10", str(2**63)])
    if col.kind == "float":
        return st.sampled_from([*common, "nan", "inf", True, "1,5", ""])
    if col.kind == "decimal":
        too_precise = "1." + "1" * (col.scale + 1)
        too_large = "9" * (col.precision - col.scale + 1)
        return st.sampled_from([*common, True, "$1", too_precise, too_large])
    if col.kind == "text":
        extra = ["x" * (col.length + 1)] if col.length else []
        return st.sampled_from([5, 1.5, True, *extra])
    if col.kind == "boolean":
        return st.sampled_from([*common, "yes", 2, -1, 1.5])
    if col.kind == "date":
        return st.sampled_from([*common, "2024-13-01", 20240101, True, "2024-01-01T00:00:00"])
    if col.kind == "datetime":
        return st.sampled_from([*common, "2024-01-01", 5, True, "2024-01-01T25:00:00"])
    return st.sampled_from(["{", "abc", "[1,", "1; DROP TABLE t"])


def insert(values: dict[str, Any]) -> Proposal:
    return Proposal.model_validate(
        {
            "summary": "s",
            "rationale": "r",
            "changes": [{"op": "insert", "table": "t", "values": values}],
        }
    )


def problems(p: Proposal, catalogue: Catalogue, engine: sa.Engine) -> list[tuple[Any, ...]]:
    with pytest.raises(ProposalInvalid) as info:
        validate(p, catalogue, engine)
    return [(x.index, x.table, x.column, x.code) for x in info.value.problems]


def same(col: Col, stored: Any, coerced: Any) -> bool:
    if col.kind == "float":
        return math.isclose(stored, coerced, rel_tol=0, abs_tol=0) or stored == coerced
    return bool(stored == coerced)


@SETTINGS
@given(data=st.data(), cols=tables())
def test_valid_values_always_pass_and_can_be_written(data: st.DataObject, cols: list[Col]) -> None:
    values = {c.name: data.draw(valid_values(c), label=c.name) for c in cols}
    with database(cols) as (engine, catalogue):
        result = validate(insert(values), catalogue, engine)
        row = result.changes[0].values
        assert set(row) == set(values)
        # The coerced values are what the database takes and gives back.
        core = catalogue.core_table("t")
        with engine.begin() as conn:
            key = conn.execute(core.insert().values(dict(row))).inserted_primary_key
            assert key is not None
            new_id = key[0]
            stored = conn.execute(sa.select(core).where(core.c.id == new_id)).one()._mapping
        for c in cols:
            assert same(c, stored[c.name], row[c.name]), (c, stored[c.name], row[c.name])


@SETTINGS
@given(data=st.data(), cols=tables())
def test_a_wrong_value_is_always_reported_on_its_column(
    data: st.DataObject, cols: list[Col]
) -> None:
    target = data.draw(st.sampled_from(cols), label="target")
    values = {c.name: data.draw(valid_values(c), label=c.name) for c in cols}
    values[target.name] = data.draw(wrong_values(target), label="wrong")
    with database(cols) as (engine, catalogue):
        assert problems(insert(values), catalogue, engine) == [(0, "t", target.name, "bad_value")]
        update = Proposal.model_validate(
            {
                "summary": "s",
                "rationale": "r",
                "changes": [
                    {
                        "op": "update",
                        "table": "t",
                        "key": {"id": 1},
                        "values": {target.name: values[target.name]},
                    }
                ],
            }
        )
        found = problems(update, catalogue, engine)
        assert (0, "t", target.name, "bad_value") in found
        assert all(column in (None, target.name) for _, _, column, _ in found)


@SETTINGS
@given(data=st.data(), cols=tables())
def test_missing_and_null_values_name_exactly_the_required_columns(
    data: st.DataObject, cols: list[Col]
) -> None:
    given_names = data.draw(st.sets(st.sampled_from([c.name for c in cols])), label="given")
    nulls = data.draw(
        st.sets(st.sampled_from(sorted(given_names))) if given_names else st.just(set())
    )
    values = {
        c.name: None if c.name in nulls else data.draw(valid_values(c))
        for c in cols
        if c.name in given_names
    }
    expected = {
        c.name
        for c in cols
        if (c.name not in given_names and c.required) or (c.name in nulls and not c.nullable)
    }
    with database(cols) as (engine, catalogue):
        if not expected:
            validate(insert(values), catalogue, engine)
            return
        found = problems(insert(values), catalogue, engine)
        assert {column for *_, column, code in found if code == "not_null"} == expected
        assert all(code == "not_null" for *_, code in found)


@SETTINGS
@given(data=st.data(), cols=tables(), unknown=identifiers)
def test_unknown_columns_are_named(data: st.DataObject, cols: list[Col], unknown: str) -> None:
    assume(unknown not in {c.name for c in cols})
    values = {c.name: data.draw(valid_values(c)) for c in cols}
    values[unknown] = "x"
    with database(cols) as (engine, catalogue):
        assert problems(insert(values), catalogue, engine) == [(0, "t", unknown, "unknown_column")]


@SETTINGS
@given(cols=tables(), max_rows=st.integers(1, 5), count=st.integers(1, 8))
def test_row_limit(cols: list[Col], max_rows: int, count: int) -> None:
    deletes = [{"op": "delete", "table": "t", "key": {"id": 1}}] * count
    p = Proposal.model_validate({"summary": "s", "rationale": "r", "changes": deletes})
    with database(cols) as (_, catalogue):
        try:
            validate(p, catalogue, None, max_rows=max_rows)
        except ProposalInvalid as exc:
            codes = [x.code for x in exc.problems]
        else:
            codes = []
    assert ("too_many_rows" in codes) == (count > max_rows)
    assert ("duplicate_row" in codes) == (count > 1)
