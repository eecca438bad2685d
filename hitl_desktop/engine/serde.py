"""JSON values, durations and ids: the small conversions every other module needs."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from datetime import timedelta
from json.scanner import make_scanner
from typing import Any

from ..units import durations
from .errors import InvalidDuration, NotJSON, PayloadTooLarge

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _compact_encoder(ensure_ascii: bool, allow_nan: bool) -> Callable[[Any], str]:
    """json's C encoder made once, called directly: JSONEncoder.encode makes a new one per
    call behind two Python wrappers. No circular-reference markers: a cycle raises
    RecursionError (as very deep nesting always did)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the standard path
        standard = json.JSONEncoder(
            ensure_ascii=ensure_ascii, allow_nan=allow_nan, separators=(",", ":")
        )
        return standard.encode
    quote = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    chunks = make(None, _encoder.default, quote, None, ":", ",", False, False, allow_nan)
    return lambda value: "".join(chunks(value, 0))


encode = _compact_encoder(ensure_ascii=False, allow_nan=False)
"""Compact JSON text of a value (TypeError/ValueError/RecursionError if it has none)."""


def dump(value: Any, what: str, limit: int) -> str:
    """Encode *value* as compact JSON; raise before anything is written if it cannot be stored."""
    try:
        text = encode(value)
    except (TypeError, ValueError) as exc:
        raise NotJSON(what, str(exc)) from None
    except RecursionError:
        raise NotJSON(what, "it nests too deeply or refers to itself") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise NotJSON(
                what, f"it holds text that is not valid Unicode ({bad}, a lone surrogate)"
            ) from None
    # len() counts characters; only texts near the limit pay for the exact UTF-8 size.
    if len(text) * 4 > limit:
        size = len(text.encode("utf-8"))
        if size > limit:
            raise PayloadTooLarge(what, size, limit)
    return text


_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def load(text: str | None) -> Any:
    if text is None:
        return None
    # The texts are dump()'s: compact, no surrounding whitespace. Scanning them directly skips
    # json.loads' Python wrappers; anything else (or a bad text) goes the standard way.
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def seconds(duration: str | float | int | timedelta) -> float:
    """'10m' → 600.0; '1h30m', '500ms', 2.5 and timedelta are accepted too."""
    if isinstance(duration, str):
        return _text_seconds(duration)
    if isinstance(duration, timedelta):
        value = duration.total_seconds()
    elif isinstance(duration, bool):
        raise InvalidDuration(duration)
    elif isinstance(duration, int | float):
        value = float(duration)
    else:
        raise InvalidDuration(duration)
    if not value > 0 or value != value or value == float("inf"):
        raise InvalidDuration(duration)
    return value


@functools.lru_cache(maxsize=256)
def _text_seconds(duration: str) -> float:
    """A duration written as text; a task passes the same few literals again and again."""
    try:
        return durations.text_seconds(duration)
    except ValueError:
        raise InvalidDuration(duration) from None


_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
"""Two base32 digits per 10 bits: 13 lookups encode an id's 130 bits."""


def new_id(prefix: str) -> str:
    """A sortable unique id: 48 bits of milliseconds and 80 random bits in Crockford base32."""
    n = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    p = _PAIRS
    return (
        f"{prefix}_{p[n >> 120]}{p[n >> 110 & 1023]}{p[n >> 100 & 1023]}{p[n >> 90 & 1023]}"
        f"{p[n >> 80 & 1023]}{p[n >> 70 & 1023]}{p[n >> 60 & 1023]}{p[n >> 50 & 1023]}"
        f"{p[n >> 40 & 1023]}{p[n >> 30 & 1023]}{p[n >> 20 & 1023]}{p[n >> 10 & 1023]}"
        f"{p[n & 1023]}"
    )
