"""The public records: made through quick_init, they behave as the dataclasses they are."""

import dataclasses
from datetime import UTC, datetime

import pytest

from hitl_desktop.engine import RunPaused, Token, TokenResult, TokenStatus

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def _token(**changes: object) -> Token:
    fields = {
        "id": "tok_1",
        "run_id": "run_1",
        "status": TokenStatus.WAITING,
        "tags": ("refund",),
        "created_at": NOW,
        "expires_at": NOW,
        "completed_at": None,
        "output": None,
        "idempotency_key": None,
    }
    return Token(**{**fields, **changes})  # type: ignore[arg-type]


def test_records_take_positions_keywords_and_defaults_like_the_dataclass():
    by_keyword = _token()
    by_position = Token(
        "tok_1", "run_1", TokenStatus.WAITING, ("refund",), NOW, NOW, None, None, None
    )
    assert by_keyword == by_position and by_keyword.is_cached is False
    assert TokenResult("tok_1", True) == TokenResult("tok_1", True, None, None)
    assert RunPaused("run_1", 1.0, "eng_1", "tok_1").token_id == "tok_1"
    assert (
        repr(TokenResult("t", False))
        == "TokenResult(token_id='t', ok=False, output=None, error=None)"
    )
    with pytest.raises(TypeError):
        Token("tok_1")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _token(colour="red")


def test_records_stay_frozen_and_replaceable():
    token = _token()
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.status = TokenStatus.COMPLETED  # type: ignore[misc]
    done = dataclasses.replace(token, status=TokenStatus.COMPLETED)
    assert done.status == TokenStatus.COMPLETED and token.status == TokenStatus.WAITING
    assert hash(RunPaused("run_1", 1.0, "eng_1", "tok_1")) == hash(
        RunPaused("run_1", 1.0, "eng_1", "tok_1")
    )
