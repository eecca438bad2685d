"""Durations: the settings' form, the engine's form, and the subset relation between them."""

from datetime import timedelta

import pytest

from hitl_desktop.engine.serde import seconds
from hitl_desktop.units.durations import parse_duration, text_seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("24h", timedelta(hours=24)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(minutes=90)),
        (" 1H 30M ", timedelta(minutes=90)),
    ],
)
def test_durations(text: str, expected: timedelta):
    assert parse_duration(text) == expected
    # Every duration the settings accept, the engine accepts as a token timeout, equal.
    assert seconds(text) == expected.total_seconds()


@pytest.mark.parametrize("text", ["", "10", "m", "0s", "0h0m", "1.5h", "-1h", "10 minutes", "1y"])
def test_invalid_durations_say_what_is_accepted(text: str):
    with pytest.raises(ValueError, match=r"not a duration.*90s, 10m, 24h, 2d"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1.5h", "500ms", "0.5s"])
def test_the_engine_accepts_more_than_the_settings(text: str):
    assert seconds(text) > 0
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("10m", 600.0), ("1.5h", 5400.0), ("500ms", 0.5), (" 2 D ", 172800.0)]
)
def test_the_engine_text_form(text: str, expected: float):
    assert text_seconds(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "10", "m10", "10mm", "-5s", "0s", "1e999s"])
def test_what_the_engine_refuses_as_text(text: str):
    with pytest.raises(ValueError):
        text_seconds(text)
