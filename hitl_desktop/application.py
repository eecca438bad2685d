"""The application layer: what the console, the CLI and the self-test share above the agent.

It turns this machine's settings into what the agent needs — the `Targets` (profiles and the
keyring's secrets) that db-change runs execute with, and a `ChangeRequest` for a reviewer's
text — so that each front end says the same thing when, say, no target is set — and tells who
decided a review in the same words in the console and in `hitl show`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import secrets
from .agent import ChangeRequest, Decision, DecisionInvalid, Edit, RequestInvalid, Review, Targets
from .config import Settings
from .engine import Token, TokenStatus


def local_targets(settings: Settings) -> Targets:
    """The profiles *settings* define, with the keyring's API key and database passwords."""
    return Targets(
        settings.target_profiles(),
        api_key=secrets.get_api_key,
        db_password=secrets.get_db_password,
    )


def change_request(
    settings: Settings, text: str, *, profile: str | None = None, timeout: str | None = None
) -> ChangeRequest:
    """The `ChangeRequest` for *text* under *profile* (default: the active one).

    Raises `RequestInvalid` naming the problem: no target set, a profile this machine lacks, an
    empty or over-long request, a bad timeout.
    """
    name = profile or settings.profile
    profiles = settings.target_profiles()
    found = profiles.get(name)
    if found is None:
        known = ", ".join(sorted(profiles)) or "none"
        raise RequestInvalid(
            f"no target profile {name!r} (profiles here: {known}): choose a target database in "
            "the console's Settings, add a profile with 'hitl profile add NAME --target URL', "
            "set HITL_TARGET, or start the console with --demo"
        )
    return ChangeRequest.from_json(
        {
            "request": text.strip(),
            "profile": name,
            "target_id": found.target_id,
            "timeout": timeout or settings.token_timeout,
        }
    )


@dataclass(frozen=True, slots=True)
class Decided:
    """Who decided a review, when and how.

    *by* is who the store was told completed the token (the session's database role on
    PostgreSQL, the OS account on SQLite); *name* is the display name inside the decision, typed
    by whichever client sent it, so it is shown beside *by* and never instead of it.
    """

    by: str | None
    at: datetime
    approve: bool | None
    """None when the token's output is not a db-change decision (another task's token)."""
    name: str | None
    comment: str | None
    edits: tuple[str, ...]
    """Each edited change as "column proposed → edited" (several columns comma-separated)."""

    @classmethod
    def of(cls, token: Token | None, review: Review | None = None) -> Decided | None:
        """The decision that completed *token*; None while it waits or once it timed out.
        *review* gives the proposed values the edits replaced."""
        if token is None or token.status is not TokenStatus.COMPLETED:
            return None
        if token.completed_at is None:
            return None
        try:
            decision = Decision.from_json(token.output)
        except DecisionInvalid:
            return cls(token.completed_by, token.completed_at, None, None, None, ())
        return cls(
            token.completed_by,
            token.completed_at,
            decision.approve,
            decision.reviewer,
            decision.comment,
            _edit_texts(decision.edits, review),
        )

    @property
    def display_name(self) -> str | None:
        """The decision's own name, when it says something the identity does not."""
        return None if self.name is None or self.name == self.by else self.name

    def sentence(self, when: str) -> str:
        """One line: Approved by ana at *when* (display name “Ana Lima”) — comment: checked —
        edits: amount 20.00 → 15.00."""
        verb = "Completed" if self.approve is None else "Approved" if self.approve else "Rejected"
        head = f"{verb} by {self.by or 'an unknown reviewer'} at {when}"
        if self.display_name is not None:
            head += f" (display name “{self.display_name}”)"
        parts = [head]
        if self.comment and self.comment.strip():
            parts.append("comment: " + " ".join(self.comment.split()))
        if self.edits:
            parts.append("edits: " + "; ".join(self.edits))
        return " — ".join(parts)


def _edit_texts(edits: Sequence[Edit], review: Review | None) -> tuple[str, ...]:
    diffs = {} if review is None else {d.index: d for d in review.diffs}
    # With one change in the proposal its number says nothing; without the review it may.
    numbered = review is None or len(review.diffs) > 1
    texts = []
    for edit in edits:
        diff = diffs.get(edit.index)
        proposed = {} if diff is None or diff.after is None else diff.after
        columns = ", ".join(
            f"{column} {_value(proposed[column])} → {_value(value)}"
            if column in proposed
            else f"{column} → {_value(value)}"
            for column, value in edit.values.items()
        )
        texts.append(f"change {edit.index}: {columns}" if numbered else columns)
    return tuple(texts)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
