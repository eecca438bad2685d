"""Who decided a review, in the words the console and `hitl show` share (application.Decided)."""

from datetime import UTC, datetime

import pytest

from hitl_desktop.agent import Decision, Edit
from hitl_desktop.application import Decided
from hitl_desktop.engine import Token, TokenStatus

AT = datetime(2026, 12, 4, 10, 42, tzinfo=UTC)


def token(status: TokenStatus, output: object = None, by: str | None = "ana") -> Token:
    done = status is not TokenStatus.WAITING
    return Token(
        id="tok_1",
        run_id="run_1",
        status=status,
        tags=(),
        created_at=datetime(2026, 12, 4, 10, 0, tzinfo=UTC),
        expires_at=datetime(2026, 12, 5, 10, 0, tzinfo=UTC),
        completed_at=AT if done else None,
        output=output,
        idempotency_key=None,
        completed_by=by if status is TokenStatus.COMPLETED else None,
    )


@pytest.mark.parametrize("status", [TokenStatus.WAITING, TokenStatus.TIMED_OUT])
def test_nobody_decided_a_token_that_waits_or_timed_out(status: TokenStatus) -> None:
    assert Decided.of(None) is None
    assert Decided.of(token(status)) is None


def test_the_identity_comes_first_and_the_display_name_beside_it() -> None:
    decided = Decided.of(token(TokenStatus.COMPLETED, Decision(True, "Ana Lima").to_json()))
    assert decided is not None and (decided.by, decided.at) == ("ana", AT)
    assert decided.sentence("10:42") == "Approved by ana at 10:42 (display name “Ana Lima”)"


def test_a_display_name_equal_to_the_identity_is_said_once() -> None:
    decided = Decided.of(token(TokenStatus.COMPLETED, Decision(False, "ana", "dup").to_json()))
    assert decided is not None and decided.display_name is None
    assert decided.sentence("10:42") == "Rejected by ana at 10:42 — comment: dup"


def test_comment_on_one_line_and_edits_numbered_without_the_review() -> None:
    decision = Decision(
        True, "Ana", "checked\n  with   finance", (Edit(0, {"amount": "15.00", "note": None}),)
    )
    decided = Decided.of(token(TokenStatus.COMPLETED, decision.to_json(), by=None))
    assert decided is not None
    assert decided.sentence("Dec 04 10:42") == (
        "Approved by an unknown reviewer at Dec 04 10:42 (display name “Ana”) — comment: checked"
        " with finance — edits: change 0: amount → 15.00, note → null"
    )


def test_another_tasks_completion_is_completed_by_whoever_completed_it() -> None:
    decided = Decided.of(token(TokenStatus.COMPLETED, {"approved": True}))
    assert decided is not None and decided.approve is None and decided.name is None
    assert decided.sentence("10:42") == "Completed by ana at 10:42"
