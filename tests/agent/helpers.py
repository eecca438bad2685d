"""Small builders shared by the agent tests."""

import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hitl_desktop.agent import ChangeRequest, Proposal, TargetProfile, Targets, review_from_steps
from hitl_desktop.engine import Engine

MakeDb = Callable[..., sa.Engine]

DEMO_TODAY = date(2025, 7, 1)
"""The demo database's today in the tests (`create_demo_db(today=...)`): its dates are fixed, so
a test can name one (customer 17's subscription started on 2024-07-02)."""


def change_for(
    targets: Targets, text: str, url: str, *, timeout: str = "24h", **profile: Any
) -> ChangeRequest:
    """A request for *text* under a profile of *targets* that points at *url* (the profile's
    other fields from *profile*: proposer, model, base_url, allow, deny, max_rows)."""
    name = f"p{len(targets.profiles)}"
    for key in ("allow", "deny"):
        if profile.get(key) is not None:
            profile[key] = tuple(profile[key])
    found = targets.add(TargetProfile(name, url, **profile))
    return ChangeRequest(text, name, timeout, found.target_id)


def proposal(*changes: dict[str, Any]) -> Proposal:
    return Proposal.model_validate({"summary": "s", "rationale": "r", "changes": list(changes)})


# A valid refund on the demo database, as a proposal's change.
REFUND_INSERT = {
    "op": "insert",
    "table": "refunds",
    "values": {
        "invoice_id": 1042,
        "amount": "20.00",
        "reason": "requested_by_customer",
        "status": "pending",
        "created_at": "2025-07-01T10:00:00",
    },
}


# The model's answer for "refund $20 on invoice 1042", in the wire form (column/value pairs).
REFUND = {
    "summary": "Refund $20.00 on invoice INV-001042.",
    "rationale": "Invoice 1042 is paid ($90.00); the customer asked for $20 back.",
    "changes": [
        {
            "op": "insert",
            "table": "refunds",
            "key": [],
            "values": [
                {"column": "invoice_id", "value": 1042},
                {"column": "amount", "value": "20.00"},
                {"column": "reason", "value": "goodwill"},
                {"column": "status", "value": "pending"},
                {"column": "created_at", "value": "2024-03-01T10:00:00"},
            ],
        }
    ],
}


async def seen(engine: Engine, run_id: str) -> str:
    """The hash of a db-change run's review: what a console that shows it sends as *seen*."""
    review = review_from_steps(await engine.get_steps(run_id))
    assert review is not None, f"run {run_id} has no review yet"
    return review.diff_hash


DEMO_SET_PARTS = ("Refund $20 on invoice 1042", "Mark invoice 4854 as paid")
"""The parts of the offline proposer's demo change set (DEMO_CHANGE_SET), in order."""


def demo_set_written(target: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the demo change set writes: the refunds of invoice 1042 and invoice 4854's status;
    NOTHING before, BOTH once both parts are applied."""
    with sqlite3.connect(target) as conn:
        return {
            "refunds": conn.execute(
                "select amount, status from refunds where invoice_id = 1042"
            ).fetchall(),
            "invoice": conn.execute("select status from invoices where id = 4854").fetchall(),
        }


NOTHING = {"refunds": [], "invoice": [("open",)]}
BOTH = {"refunds": [(20, "pending")], "invoice": [("paid",)]}
