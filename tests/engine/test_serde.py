from datetime import timedelta

import pytest

from hitl_desktop.engine import InvalidDuration, NotJSON, PayloadTooLarge
from hitl_desktop.engine.serde import dump, new_id, seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", 600.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        (" 90 s ", 90.0),
        (2.5, 2.5),
        (timedelta(minutes=2), 120.0),
    ],
)
def test_durations(text, expected):
    assert seconds(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "soon", "10", "m10", "10mm", "-5s", 0, -1, True, None, float("nan")]
)
def test_bad_durations_are_named(bad):
    with pytest.raises(InvalidDuration, match="invalid duration"):
        seconds(bad)


def test_dump_is_compact_and_keeps_unicode():
    assert dump({"a": [1, "é"]}, "x", 100) == '{"a":[1,"é"]}'


def test_dump_counts_utf8_bytes_against_the_limit():
    dump("é" * 40, "the note", 100)  # 82 bytes with quotes
    with pytest.raises(
        PayloadTooLarge, match=r"the note is 102 bytes of JSON, over the limit of 100"
    ):
        dump("é" * 50, "the note", 100)


def test_dump_refuses_what_json_cannot_say():
    with pytest.raises(NotJSON, match="the output is not JSON-serialisable"):
        dump(object(), "the output", 1000)
    with pytest.raises(NotJSON):
        dump(float("nan"), "the output", 1000)


def test_ids_are_unique_sortable_and_prefixed():
    ids = [new_id("run") for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(i.startswith("run_") and len(i) == 30 for i in ids)


def test_text_that_is_not_unicode_is_refused_by_name_before_the_store():
    with pytest.raises(NotJSON, match=r"the output.*not valid Unicode \(\\ud800"):
        dump({"comment": "ok\ud800"}, "the output", 1 << 20)
    assert dump({"comment": "ünïcode ✓"}, "the output", 1 << 20) == ('{"comment":"ünïcode ✓"}')
