"""How `hitl` prints: aligned tables, times, durations, and records as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..engine import Run, Step, Token, redact_url

if TYPE_CHECKING:
    from ..agent import ChangeSet, PartState


def token_table(tokens: list[Token]) -> str:
    rows = [
        [
            t.id,
            t.status,
            t.run_id or "-",
            tags(t.tags),
            when(t.expires_at),
            when(t.completed_at),
        ]
        for t in tokens
    ]
    headers = ["TOKEN", "STATUS", "RUN", "TAGS", "EXPIRES", "FINISHED"]
    return table(headers, rows, empty="no tokens")


def table(headers: list[str], rows: list[list[str]], empty: str = "none") -> str:
    if not rows:
        return f"({empty})"
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def footer(count: int, limit: int, noun: str) -> str:
    if count == 0:
        return ""
    more = f"; there may be more: raise --limit past {limit}" if count >= limit else ""
    return f"\n\n{count} {noun}{'' if count == 1 else 's'}{more}"


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def tags(values: Sequence[str]) -> str:
    return ",".join(values) or "-"


def short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def record(item: Run | Token | Step) -> dict[str, Any]:
    """A run, token or step as a JSON object."""
    # is_cached only means something to the caller of trigger()/create_token().
    doc = {f.name: getattr(item, f.name) for f in fields(item) if f.name != "is_cached"}
    payload = doc.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("target"), str):
        # Runs stored by earlier versions carried their target's URL: never print a password.
        doc["payload"] = {**payload, "target": redact_url(payload["target"])}
    return doc


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def diff_line(diff: Any) -> str:
    """One line of a review's diff: + an insert, - a delete, ~ an update and what it changes."""
    key = ", ".join(f"{k}={v}" for k, v in diff.key.items()) or "new row"
    if diff.op == "insert":
        values = ", ".join(f"{k}={short(v, 30)}" for k, v in (diff.after or {}).items())
        return f"  + {diff.table} ({key}): {values}"
    if diff.op == "delete":
        return f"  - {diff.table} ({key})"
    before, after = diff.before or {}, diff.after or {}
    changes = ", ".join(
        f"{c}: {short(before.get(c), 30)} -> {short(after.get(c), 30)}" for c in diff.changed
    )
    return f"  ~ {diff.table} ({key}): {changes or 'no field changes'}"


APPLY_TEXT = {
    "all": "written together, in one transaction, once every part is approved (all or nothing)",
    "each": "each part written on its own as soon as it is approved",
}


def part_title(part: PartState, count: int) -> str:
    """``part 2 of 3 'Mark invoice 4854 as paid'``."""
    return f"part {part.number} of {count} {part.name!r}"


def part_lines(found: ChangeSet, *, diffs: bool = True) -> list[str]:
    """A change set for people: each part with its token, rule, status and diff lines."""
    count = len(found.parts)
    lines = [f"change set of {count} parts, {APPLY_TEXT[found.apply]}"]
    for part in found.parts:
        rule = part.review.rule
        under = f", rule '{rule['name']}'" if rule else ""
        by = f" by {', '.join(part.decided_by)}" if part.decided_by else ""
        lines.append(f"{part_title(part, count)}: {part.status}{by}{under}")
        if part.token_id is not None:
            lines.append(f"  token {part.token_id}")
        if diffs:
            lines += ["  " + diff_line(diff) for diff in part.review.diffs]
    return lines


def part_record(part: PartState) -> dict[str, Any]:
    """A part of a change set as a JSON object."""
    return {
        "number": part.number,
        "name": part.name,
        "token_id": part.token_id,
        "status": part.status,
        "decided_by": list(part.decided_by),
        "rule": part.review.rule,
        "diff_hash": part.review.diff_hash,
        "diffs": [diff.to_json() for diff in part.review.diffs],
        "outcome": None if part.outcome is None else part.outcome.to_json(),
    }
