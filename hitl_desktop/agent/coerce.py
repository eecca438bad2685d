"""Turning a model's JSON scalars into a column's Python values, and database values back into JSON.

Coercion accepts only readings that are unambiguous: "20.00" is a decimal, "abc" is not an integer,
"true" is a boolean, "2024-05-01" is a date. Everything else is refused with a reason the model can
act on.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from .catalogue import ColumnInfo

Scalar = str | int | float | bool | None
"""What a proposal may carry as a value: a JSON scalar."""

JSONValue = Any
"""A value json.dumps accepts (dicts, lists, str, int, float, bool, None)."""

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


class CoercionError(ValueError):
    """A value does not fit its column; the message says why, for a person or a model."""


def _show(value: object) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Scalar, what: str) -> Decimal:
    """A Decimal from an int, a float or a numeric string; booleans are not numbers."""
    if isinstance(value, bool):
        raise CoercionError(f"{_show(value)} is a boolean, not {what}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CoercionError(f"{_show(value)} is not a finite number")
        return Decimal(repr(value))
    if isinstance(value, str) and len(value) <= 100 and _NUMBER.fullmatch(value.strip()):
        return Decimal(value.strip())
    raise CoercionError(f"{_show(value)} is not {what}")


def _integer(value: Scalar, column: ColumnInfo) -> int:
    number = _number(value, "an integer")
    if number != number.to_integral_value():
        raise CoercionError(f"{_show(value)} is not a whole number")
    if number.adjusted() > 19 or not INT_MIN <= int(number) <= INT_MAX:
        raise CoercionError(f"{_show(value)} is out of the 64-bit integer range")
    return int(number)


def _float(value: Scalar, column: ColumnInfo) -> float:
    result = float(_number(value, "a number"))
    if not math.isfinite(result):
        raise CoercionError(f"{_show(value)} is out of the floating-point range")
    return result


def _decimal(value: Scalar, column: ColumnInfo) -> Decimal:
    number = _number(value, "a decimal number")
    if column.scale is not None:
        try:
            quantized = number.quantize(Decimal(1).scaleb(-column.scale))
        except InvalidOperation:
            raise CoercionError(f"{_show(value)} has too many digits") from None
        if quantized != number:
            raise CoercionError(
                f"{_show(value)} has more than {column.scale} decimal place(s); "
                "rounding it is for you to decide"
            )
        number = quantized
    if column.precision is not None and number:
        whole_digits = number.adjusted() + 1
        if whole_digits > column.precision - (column.scale or 0):
            raise CoercionError(f"{_show(value)} is too large for {column.sql_type}")
    return number


def _text(value: Scalar, column: ColumnInfo) -> str:
    if not isinstance(value, str):
        raise CoercionError(f"{_show(value)} is not a string; text columns take strings")
    if "\x00" in value:
        raise CoercionError("the string contains a NUL character")
    if column.max_length is not None and len(value) > column.max_length:
        raise CoercionError(
            f"the string is {len(value)} characters long, over the limit of {column.max_length}"
        )
    if column.choices is not None and value not in column.choices:
        raise CoercionError(f"{_show(value)} is not one of {', '.join(column.choices)}")
    return value


def _boolean(value: Scalar, column: ColumnInfo) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
    raise CoercionError(f"{_show(value)} is not a boolean (true or false)")


def _date(value: Scalar, column: ColumnInfo) -> date:
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CoercionError(f"{_show(value)} is not a date in ISO format (YYYY-MM-DD)")


def _datetime(value: Scalar, column: ColumnInfo) -> datetime:
    if not (isinstance(value, str) and _DATETIME.fullmatch(value.strip())):
        raise CoercionError(
            f"{_show(value)} is not a date and time in ISO format (YYYY-MM-DDTHH:MM:SS)"
        )
    try:
        result = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CoercionError(f"{_show(value)} is not a valid date and time") from None
    aware = result.tzinfo is not None
    if aware and not column.timezone:
        raise CoercionError(
            f"{_show(value)} has a timezone but the column stores local times; leave it out"
        )
    if column.timezone and not aware:
        raise CoercionError(f"{_show(value)} needs a timezone offset such as Z or +02:00")
    return result


def _json(value: Scalar, column: ColumnInfo) -> JSONValue:
    # Strict structured outputs cannot carry free-form objects, so documents come as JSON text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise CoercionError(
                f"{_show(value)} is not JSON text; JSON columns take a JSON document as a string"
            ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise CoercionError(f"{_show(value)} is not a finite number")
    return value


def _other(value: Scalar, column: ColumnInfo) -> Any:
    raise CoercionError(f"columns of type {column.sql_type} cannot be written by the agent")


_COERCERS: dict[str, Callable[[Scalar, ColumnInfo], Any]] = {
    "integer": _integer,
    "float": _float,
    "decimal": _decimal,
    "text": _text,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "json": _json,
    "other": _other,
}


def coerce_value(value: Scalar, column: ColumnInfo) -> Any:
    """The Python value to bind for *column*, or `CoercionError`. None passes (nullability is
    checked by validation, which knows whether the change is an insert or an update)."""
    if value is None:
        return None
    return _COERCERS[column.kind](value, column)


def to_json_value(value: Any) -> JSONValue:
    """A database or coerced value as JSON: exact decimals as strings, dates in ISO format."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "base64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return str(value)


def json_row(row: Mapping[str, Any]) -> dict[str, JSONValue]:
    """A row's values as JSON, column by column (`to_json_value`)."""
    return {name: to_json_value(value) for name, value in row.items()}
