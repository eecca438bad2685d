"""What `hitl worker` prints: one line per run transition, as text for people or as one JSON
object per line for machines. Each entry is a flat dict first, so both forms say the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..engine import (
    Event,
    Overdue,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunPaused,
    RunResumed,
    RunTriggered,
    TokenCompleted,
    TokenReviewed,
    TokenTimedOut,
)
from .render import short

Entry = dict[str, Any]


def started(
    at: float, worker: str, store: str, actor: str, task: str, profiles: list[str]
) -> Entry:
    return {
        "at": at,
        "event": "started",
        "worker": worker,
        "store": store,
        "actor": actor,
        "task": task,
        "profiles": profiles,
    }


def stopped(at: float, worker: str) -> Entry:
    return {"at": at, "event": "stopped", "worker": worker}


def overdue(at: float, review: Overdue) -> Entry:
    return {
        "at": at,
        "event": "Overdue",
        "run_id": review.run_id or "",
        "origin": "",
        "token_id": review.token_id,
        "rule": review.rule,
        "waiting_since": _moment(review.waiting_since.timestamp(), "seconds"),
        "approvals": review.approvals,
        "needed": review.needed,
        "escalate_to": list(review.escalate_to),
    }


def transition(event: Event, decided_by: str | None = None, via_link: str | None = None) -> Entry:
    """The entry for *event*; *decided_by*: who completed the token of a TokenCompleted, as
    the store recorded it, and *via_link*: the name the signed link that decided it was made
    for (`link_holder`), if one did. A run's output is left out: it may hold the target's
    data."""
    entry: Entry = {
        "at": event.at,
        "event": type(event).__name__,
        "run_id": event.run_id,
        "origin": event.origin,
    }
    if isinstance(event, RunTriggered):
        entry["task"] = event.task
    elif isinstance(event, RunPaused | RunResumed | TokenTimedOut | TokenReviewed):
        entry["token_id"] = event.token_id
    elif isinstance(event, RunCompleted):
        entry["outcome"] = _field(event.output, "outcome")
    elif isinstance(event, RunFailed):
        entry["error"] = short(event.error, 300)
    elif isinstance(event, RunCanceled):
        entry["reason"] = None if event.reason is None else short(event.reason, 300)
    elif isinstance(event, TokenCompleted):
        entry["token_id"] = event.token_id
        entry["decision"] = _field(event.output, "decision")
        entry["by"] = decided_by
        entry["via_link"] = via_link
    return entry


def link_holder(decision: Any) -> str | None:
    """Who the signed link that made *decision* (a token's output) was made for, or None for
    a decision not made through a link (links/app.py records it as "link": {"for": …})."""
    link = decision.get("link") if isinstance(decision, dict) else None
    name = link.get("for") if isinstance(link, dict) else None
    return short(name, 60) if isinstance(name, str) and name else None


def as_json(entry: Entry) -> str:
    return json.dumps({**entry, "at": _moment(entry["at"], "milliseconds")}, ensure_ascii=False)


def as_text(entry: Entry, worker: str) -> str:
    """One line: the time, the run and what happened to it; a change made by another process
    names that process (the worker logs every change it sees on the store)."""
    moment = _moment(entry["at"], "seconds")
    kind = entry["event"]
    if kind == "started":
        profiles = ", ".join(entry["profiles"])
        return (
            f"{moment} worker {worker} started on {entry['store']} as {entry['actor']}: "
            f"executes {entry['task']} runs for the profiles {profiles}"
        )
    if kind == "stopped":
        return f"{moment} worker {worker} stopped: its runs in flight went back to the queue"
    what = _what(entry)
    origin = "" if entry["origin"] in (worker, "") else f" [from {entry['origin']}]"
    return f"{moment} {entry['run_id']} {what}{origin}"


def _what(entry: Entry) -> str:
    kind = entry["event"]
    token = f" (token {entry['token_id']})" if entry.get("token_id") else ""
    if kind == "RunTriggered":
        return f"triggered: {entry['task']}"
    if kind == "RunPaused":
        return f"paused: waiting for review{token}"
    if kind == "RunResumed":  # claimed: from the queue, after a decision, or taken over
        return f"resumed{token}" if token else "executing"
    if kind == "RunCompleted":
        return "completed" + (f": {entry['outcome']}" if entry["outcome"] else "")
    if kind == "RunFailed":
        return f"failed: {entry['error']}"
    if kind == "RunCanceled":
        return "canceled" + (f": {entry['reason']}" if entry["reason"] else "")
    if kind == "TokenCompleted":
        decision = entry["decision"] or "completed"
        by = f" by {entry['by']}" if entry["by"] else ""
        via = f" via link by {entry['via_link']}" if entry.get("via_link") else ""
        return f"decided: {decision}{by}{via}{token}"
    if kind == "TokenTimedOut":
        return f"timed out: nobody decided in time{token}"
    if kind == "TokenReviewed":
        return f"reviewed: an approval was recorded, more are needed{token}"
    if kind == "Overdue":
        rule = f" under rule '{entry['rule']}'" if entry["rule"] else ""
        escalated = ", ".join(entry["escalate_to"])
        also = f"; {escalated} may now decide too" if escalated else ""
        return (
            f"overdue: waiting for review since {entry['waiting_since']}{rule} "
            f"({entry['approvals']} of {entry['needed']} approvals){also}{token}"
        )
    return str(kind).lower()


def _field(output: Any, name: str) -> str | None:
    value = output.get(name) if isinstance(output, dict) else None
    return short(value, 60) if isinstance(value, str) else None


def _moment(at: float, timespec: str) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
