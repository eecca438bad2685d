"""JSON values, durations and ids: the small conversions every other module needs."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from typing import Any

from .errors import InvalidDuration, NotJSON, PayloadTooLarge

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dump(value: Any, what: str, limit: int) -> str:
    """Encode *value* as compact JSON; raise before anything is written if it cannot be stored."""
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise NotJSON(what, str(exc)) from None
    # len() counts characters; only texts near the limit pay for the exact UTF-8 size.
    if len(text) * 4 > limit:
        size = len(text.encode("utf-8"))
        if size > limit:
            raise PayloadTooLarge(what, size, limit)
    return text


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def seconds(duration: str | float | int | timedelta) -> float:
    """'10m' → 600.0; '1h30m', '500ms', 2.5 and timedelta are accepted too."""
    if isinstance(duration, timedelta):
        value = duration.total_seconds()
    elif isinstance(duration, bool):
        raise InvalidDuration(duration)
    elif isinstance(duration, int | float):
        value = float(duration)
    elif isinstance(duration, str):
        text = duration.strip().lower().replace(" ", "")
        pos, value = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                raise InvalidDuration(duration)
            value += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise InvalidDuration(duration)
    else:
        raise InvalidDuration(duration)
    if not value > 0 or value != value or value == float("inf"):
        raise InvalidDuration(duration)
    return value


_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """A sortable unique id: 48 bits of milliseconds and 80 random bits in Crockford base32."""
    number = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        number, rest = divmod(number, 32)
        chars.append(_ALPHABET[rest])
    return prefix + "_" + "".join(reversed(chars))
