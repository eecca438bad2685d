"""Durations, in the two forms the app reads them.

* The settings' form (`parse_duration`): whole numbers of ``s m h d w``, summed (``"1h30m"``).
* The engine's text form (`text_seconds`): that and more, decimals and ``ms``. The engine also
  takes a number of seconds or a ``timedelta`` (``engine.serde.seconds``).

Every text of the first form is one of the second with the same value, so a timeout saved in
the settings always works as a token timeout.
"""

from __future__ import annotations

import re
from datetime import timedelta

_SETTING_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SECONDS: dict[str, float] = {"ms": 0.001, **_SETTING_SECONDS}
_SETTING_PART = re.compile(r"(\d+)([smhdw])")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"10m"``, ``"24h"``, ``"2d"``, ``"1w"`` or a sum such as ``"1h30m"``.

    A strict subset of what the engine's ``timeout=`` accepts, so a saved value always works
    there. Raises ``ValueError`` naming the accepted forms.
    """
    compact = text.strip().lower().replace(" ", "")
    total, position = 0, 0
    for match in _SETTING_PART.finditer(compact):
        if match.start() != position:
            break
        total += int(match.group(1)) * _SETTING_SECONDS[match.group(2)]
        position = match.end()
    if not compact or position != len(compact) or total <= 0:
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit, s, m, h, d or w "
            "(e.g. 90s, 10m, 24h, 2d, or 1h30m)"
        )
    return timedelta(seconds=total)


def text_seconds(text: str) -> float:
    """The seconds of a duration the engine accepts as text: '10m' → 600.0; '1h30m', '500ms',
    '1.5h' too. Raises ``ValueError`` for anything that is not a positive, finite duration."""
    compact = text.strip().lower().replace(" ", "")
    pos, value = 0, 0.0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            raise ValueError(text)
        value += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(compact) or not compact:
        raise ValueError(text)
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(text)
    return value
