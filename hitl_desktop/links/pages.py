"""The HTML a link shows: the review with its diff and a plain form, the answer to a decision,
and a small page for each refusal. No scripts: every text from the store, the agent or the
model is escaped, so it is shown as plain text and never read as markup."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

from ..agent import ChangeSet, Diff, Review
from ..engine import Token
from .signing import Link

MAX_COMMENT = 2000
"""The longest comment the form takes, in characters."""

_STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
.text { white-space: pre-wrap; background: #f5f5f7; padding: .6rem .8rem; border-radius: 4px; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
th, td { border: 1px solid #d2d2d7; padding: .25rem .6rem; text-align: left;
         vertical-align: top; font-family: monospace; white-space: pre-wrap; }
th { background: #f5f5f7; font-family: sans-serif; }
.before { background: #fde8e8; } .after { background: #e6f4ea; }
.meta { color: #555; font-size: .9rem; }
textarea { width: 100%; max-width: 40rem; }
button { font-size: 1rem; padding: .4rem 1.2rem; margin-right: .6rem; }
"""


_APPLY_TEXT = {
    "all": "Nothing is written until every part is approved; then all of them are written "
    "together, in one transaction (a rejected part rejects the whole request).",
    "each": "Each part is written on its own as soon as it is approved.",
}
"""How a change set's parts are written, for its part's page."""


def review_page(
    review: Review, token: Token, link: Link, action: str, found: ChangeSet | None = None
) -> str:
    """The review behind *link*: the request, the agent's summary and rationale, the diff
    (before → after) and a form posting the decision to *action* with the diff's hash. For a
    part of a change set (*found*, whose part *token* decides), *review* is the part's: the
    page names the part and shows the set's request as its context."""
    approvals = sum(1 for v in token.verdicts if v.approve)
    needed = token.requirement.approvals if token.requirement else 1
    rule = token.requirement.rule if token.requirement else None
    part = None if found is None else found.part_of(token.id)
    if found is None or part is None:
        what = f"a change to {review.target}"
        summary = ["<h2>The agent's summary</h2>", _text(review.summary)]
    else:
        count = len(found.parts)
        what = f"part {part.number} of {count} of a change to {review.target}"
        summary = [
            _paragraph(
                f"The agent split this request into {count} parts, each reviewed and decided "
                f"on its own: this link decides part {part.number} only. "
                + _APPLY_TEXT[found.apply]
            ),
            f"<h2>Part {part.number} of {count}</h2>",
            _text(part.name),
        ]
    lines = [
        f"<h1>Review: {_e(what)}</h1>",
        _meta(
            f"Token {token.id}",
            f"proposed by {review.proposer}",
            f"rule '{rule}'" if rule else "no rule",
            f"{approvals} of {needed} approvals",
            f"waits until {_moment(token.expires_at)}" if token.expires_at else None,
        ),
        "<h2>Request</h2>",
        _text(review.request),
        *summary,
        "<h2>Why</h2>",
        _text(review.rationale),
        f"<h2>The change ({len(review.diffs)} row{'s' if len(review.diffs) != 1 else ''})</h2>",
        *(_diff(diff) for diff in review.diffs),
        "<h2>Decide</h2>",
        f'<form method="post" action="{_e(action)}">',
        f'<input type="hidden" name="seen" value="{_e(review.diff_hash)}">',
        '<p><label for="comment">Comment (optional)</label><br>',
        f'<textarea id="comment" name="comment" rows="3" maxlength="{MAX_COMMENT}"></textarea></p>',
        '<p><button type="submit" name="decision" value="approve">Approve</button>',
        '<button type="submit" name="decision" value="reject">Reject</button></p>',
        "</form>",
        _meta(
            f"This link was made for {link.name} and works until {_moment(link.expires)}.",
            "The decision is recorded as made via link by that name.",
            f"Diff {review.diff_hash[:12]}.",
        ),
    ]
    return _page(f"Review {token.id}", lines)


def message_page(title: str, *paragraphs: str) -> str:
    """A small page: *title* and plain-text *paragraphs* (a decision's answer, a refusal)."""
    return _page(title, [f"<h1>{_e(title)}</h1>", *(f"<p>{_e(p)}</p>" for p in paragraphs)])


def _page(title: str, body: Iterable[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{_e(title)} · hitl-desktop</title>",
            f"<style>{_STYLE}</style>",
            "</head><body>",
            *body,
            "</body></html>",
            "",
        ]
    )


def _diff(diff: Diff) -> str:
    key = ", ".join(f"{k}={_value(v)}" for k, v in diff.key.items()) or "a new row"
    heading = {"insert": "Insert into", "update": "Update", "delete": "Delete from"}[diff.op]
    rows: list[str] = []
    before, after = diff.before or {}, diff.after or {}
    if diff.op == "update":
        columns: Iterable[str] = diff.changed
    elif diff.op == "insert":
        columns = after
    else:
        columns = before
    for column in columns:
        old = _value(before[column]) if column in before else ""
        new = _value(after[column]) if column in after else ""
        rows.append(
            f'<tr><th scope="row">{_e(column)}</th>'
            f'<td class="before">{_e(old)}</td><td class="after">{_e(new)}</td></tr>'
        )
    if not rows:
        rows.append('<tr><td colspan="3">no field changes</td></tr>')
    return "\n".join(
        [
            f"<p><strong>{heading} {_e(diff.table)}</strong> ({_e(key)})</p>",
            '<table class="diff"><tr><th>column</th><th>before</th><th>after</th></tr>',
            *rows,
            "</table>",
        ]
    )


def _value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _text(text: str) -> str:
    return f'<div class="text">{_e(text)}</div>'


def _paragraph(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def _meta(*parts: str | None) -> str:
    return f'<p class="meta">{_e(" · ".join(p for p in parts if p))}</p>'


def _moment(at: float | datetime) -> str:
    moment = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _e(text: str) -> str:
    return escape(text, quote=True)
