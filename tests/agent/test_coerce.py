from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_desktop.agent import CoercionError, ColumnInfo, coerce_value, to_json_value
from hitl_desktop.agent.catalogue import ColumnKind


def col(kind: ColumnKind, **extra: Any) -> ColumnInfo:
    return ColumnInfo(name="c", kind=kind, sql_type=kind.upper(), nullable=True, **extra)


MONEY = col("decimal", precision=10, scale=2)
CODE = col("text", max_length=5)
STATUS = col("text", choices=("open", "paid"))
AWARE = col("datetime", timezone=True)

ACCEPTED = [
    (col("integer"), 7, 7),
    (col("integer"), "42", 42),
    (col("integer"), " -3 ", -3),
    (col("integer"), 20.0, 20),
    (col("integer"), "1e3", 1000),
    (col("float"), "20.5", 20.5),
    (col("float"), 3, 3.0),
    (MONEY, "20.00", Decimal("20.00")),
    (MONEY, "20", Decimal("20.00")),
    (MONEY, 20, Decimal("20.00")),
    (MONEY, 19.99, Decimal("19.99")),
    (MONEY, "-0.5", Decimal("-0.50")),
    (col("decimal"), "1.23456789", Decimal("1.23456789")),
    (col("text"), "1; DROP TABLE customers", "1; DROP TABLE customers"),
    (CODE, "abcde", "abcde"),
    (STATUS, "paid", "paid"),
    (col("boolean"), True, True),
    (col("boolean"), 0, False),
    (col("boolean"), "TRUE", True),
    (col("boolean"), "0", False),
    (col("date"), "2024-02-29", date(2024, 2, 29)),
    (col("datetime"), "2024-05-01T10:30:00", datetime(2024, 5, 1, 10, 30)),
    (col("datetime"), "2024-05-01 10:30", datetime(2024, 5, 1, 10, 30)),
    (col("datetime"), "2024-05-01T10:30:00.123456", datetime(2024, 5, 1, 10, 30, 0, 123456)),
    (AWARE, "2024-05-01T10:30:00Z", datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    (col("json"), '{"a": [1, 2]}', {"a": [1, 2]}),
    (col("json"), 5, 5),
    (col("json"), '"text"', "text"),
    (col("integer"), None, None),
]


@pytest.mark.parametrize(("column", "value", "expected"), ACCEPTED)
def test_accepted(column: ColumnInfo, value: Any, expected: Any) -> None:
    result = coerce_value(value, column)
    assert result == expected
    assert type(result) is type(expected)


REFUSED = [
    (col("integer"), "abc", "not an integer"),
    (col("integer"), "1; DROP TABLE customers", "not an integer"),
    (col("integer"), True, "boolean"),
    (col("integer"), 1.5, "whole number"),
    (col("integer"), "1_000", "not an integer"),
    (col("integer"), str(2**63), "64-bit"),
    (col("integer"), "9e99", "64-bit"),
    (col("float"), "nan", "not a number"),
    (col("float"), "inf", "not a number"),
    (col("float"), "1e9999", "range"),
    (col("float"), False, "boolean"),
    (MONEY, "20.005", "decimal place"),
    (MONEY, "$20", "not a decimal"),
    (MONEY, "123456789.00", "too large"),
    (MONEY, "20,00", "not a decimal"),
    (col("text"), 5, "not a string"),
    (col("text"), "a\x00b", "NUL"),
    (CODE, "abcdef", "over the limit of 5"),
    (STATUS, "void", "not one of"),
    (col("boolean"), "yes", "not a boolean"),
    (col("boolean"), 2, "not a boolean"),
    (col("date"), "2024-02-30", "not a date"),
    (col("date"), "01/02/2024", "not a date"),
    (col("date"), "2024-01-01T00:00:00", "not a date"),
    (col("date"), 20240101, "not a date"),
    (col("datetime"), "2024-01-01", "not a date and time"),
    (col("datetime"), "yesterday", "not a date and time"),
    (col("datetime"), "2024-01-01T10:00:00+02:00", "has a timezone"),
    (AWARE, "2024-01-01T10:00:00", "needs a timezone"),
    (col("json"), "not json {", "not JSON"),
    (col("other"), "x", "cannot be written"),
]


@pytest.mark.parametrize(("column", "value", "message"), REFUSED)
def test_refused(column: ColumnInfo, value: Any, message: str) -> None:
    with pytest.raises(CoercionError, match=message):
        coerce_value(value, column)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(CoercionError) as info:
        coerce_value("x" * 10_000, col("integer"))
    assert len(str(info.value)) < 120


def test_to_json_value() -> None:
    value = {
        "d": Decimal("20.10"),
        "day": date(2024, 1, 2),
        "at": datetime(2024, 1, 2, 3, 4, 5),
        "blob": b"\x00\xff",
        "nested": [Decimal("1.5"), None, True],
    }
    assert to_json_value(value) == {
        "d": "20.10",
        "day": "2024-01-02",
        "at": "2024-01-02T03:04:05",
        "blob": "base64:AP8=",
        "nested": ["1.5", None, True],
    }
    json.dumps(to_json_value(value), allow_nan=False)


# What a diff stores (to_json_value) must coerce back to the same key: the apply step relies on it.
round_trips = st.one_of(
    st.tuples(st.just(col("integer")), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just(col("float")), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(
        st.just(MONEY),
        st.decimals(min_value=-(10**7), max_value=10**7, places=2, allow_nan=False),
    ),
    st.tuples(st.just(col("text")), st.text().filter(lambda s: "\x00" not in s)),
    st.tuples(st.just(col("boolean")), st.booleans()),
    st.tuples(st.just(col("date")), st.dates()),
    st.tuples(st.just(col("datetime")), st.datetimes(min_value=datetime(1, 1, 2))),
    st.tuples(
        st.just(AWARE),
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
        ),
    ),
)


@given(round_trips)
def test_json_values_coerce_back(pair: tuple[ColumnInfo, Any]) -> None:
    column, value = pair
    assert coerce_value(to_json_value(value), column) == value


@given(st.integers(-(2**63), 2**63 - 1))
def test_integer_strings(number: int) -> None:
    assert coerce_value(str(number), col("integer")) == number
    assert coerce_value(f" {number} ", col("integer")) == number


@given(st.text())
def test_integer_coercion_never_crashes(text: str) -> None:
    try:
        result = coerce_value(text, col("integer"))
    except CoercionError:
        return
    assert isinstance(result, int) and not isinstance(result, bool)
