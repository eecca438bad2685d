"""What rows and views say about a run: states, views, formatting (no Qt)."""

from __future__ import annotations

from datetime import datetime

import pytest

from hitl_desktop.agent.review import Outcome
from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.records import (
    View,
    already_finished,
    format_countdown,
    format_duration,
    format_rows,
    format_when,
    read_outcome,
    request_of,
    state_of,
)

from .test_runs_model import row


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (60, "1m 00s"), (3599, "59m 59s"), (3600, "1h 00m"),
     (86399, "23h 59m"), (90000, "1d 1h"), (-5, "0s")],
)  # fmt: skip
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_countdown_says_expired_at_the_deadline() -> None:
    assert format_countdown(None, 10) == ""
    assert format_countdown(100, 40) == "1m 00s"
    assert format_countdown(100, 100) == "expired"


def test_rows_changed() -> None:
    assert format_rows(None, ()) == ""
    assert format_rows(1, (("update", 1),)) == "1 update"
    assert format_rows(3, (("insert", 3),)) == "3 inserts"
    assert format_rows(4, (("delete", 1), ("insert", 3))) == "4 rows"


def test_states() -> None:
    outcome = Outcome("invalid_edit", "ana", None, "nope")
    assert state_of(RunStatus.WAITING, None) == "waiting"
    assert state_of(RunStatus.EXECUTING, None) == "working"
    assert state_of(RunStatus.COMPLETED, outcome) == "invalid edit"
    assert state_of(RunStatus.COMPLETED, None) == "done"
    assert state_of(RunStatus.FAILED, None) == "failed"


def test_outcome_and_request_are_read_defensively() -> None:
    assert read_outcome({"outcome": "applied", "message": "ok"}).outcome == "applied"  # type: ignore[union-attr]
    assert read_outcome({"outcome": "bogus"}) is None and read_outcome([1]) is None
    assert request_of({"request": "  Refund\n $20  "}) == "Refund $20"
    assert request_of({"invoice": 1}) == '{"invoice": 1}'
    assert request_of(None) == ""
    assert len(request_of({"request": "x" * 1000})) == 240


def test_views_accept_by_state() -> None:
    applied = row(1, RunStatus.COMPLETED, outcome=Outcome("applied", "a", None, "m"))
    conflict = row(2, RunStatus.COMPLETED, outcome=Outcome("conflict", "a", None, "m"))
    waiting = row(3)
    failed = row(4, RunStatus.FAILED)
    assert [v for v in View if v.accepts(applied)] == [View.ALL, View.APPLIED]
    assert [v for v in View if v.accepts(conflict)] == [View.ALL, View.FAILED]
    assert [v for v in View if v.accepts(waiting)] == [View.WAITING, View.ALL, View.MINE]
    assert [v for v in View if v.accepts(failed)] == [View.ALL, View.FAILED]
    assert View.WAITING.status is RunStatus.WAITING and View.FAILED.status is None


def test_decision_times_are_local_minutes_with_the_date_when_not_today() -> None:
    now = datetime(2026, 12, 4, 18, 0).timestamp()  # naive: local time, whatever the zone
    assert format_when(datetime(2026, 12, 4, 10, 42, 59).timestamp(), now) == "10:42"
    assert format_when(datetime(2026, 12, 3, 10, 42).timestamp(), now) == "Dec 03 10:42"
    assert format_when(datetime(2025, 12, 4, 10, 42).timestamp(), now) == "2025-12-04 10:42"


def test_a_second_decision_is_told_who_was_first() -> None:
    now = datetime(2026, 12, 4, 18, 0).timestamp()
    at = datetime(2026, 12, 4, 10, 42).timestamp()
    assert already_finished("COMPLETED", "ana", at, now) == (
        "Already decided by ana at 10:42 — nothing was changed"
    )
    assert already_finished("COMPLETED", None, None, now) == (
        "Already decided elsewhere — nothing was changed"
    )
    assert "expired" in already_finished("TIMED_OUT", None, at, now)
