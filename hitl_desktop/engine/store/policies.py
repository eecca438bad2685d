"""The approval policy's versions: each one applied is kept, with its hash, who applied it and
when, and recorded in the audit trail. The engine keeps the text; the agent reads it."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from .. import serde
from ..models import PolicyRecord, to_datetime
from . import audit, schema
from .tx import Prepared, Row, Tx

POLICIES = schema.policies
_insert = Prepared(
    POLICIES.insert().values(
        text=sa.bindparam("text"),
        sha256=sa.bindparam("sha256"),
        applied_at=sa.bindparam("now"),
        applied_by=sa.bindparam("by"),  # PostgreSQL's trigger puts the session's role here
    )
)
_latest = Prepared(sa.select(POLICIES).order_by(POLICIES.c.version.desc()).limit(1))


def apply(tx: Tx, text: str, by: str, now: float) -> PolicyRecord:
    digest = hashlib.sha256(text.encode()).hexdigest()
    tx.execute(_insert, {"text": text, "sha256": digest, "now": now, "by": by})
    record = current(tx, keep_empty=True)
    assert record is not None
    data = serde.encode({"version": record.version, "sha256": digest, "empty": not text})
    audit.append(tx, "PolicyApplied", None, None, data, by, now)
    return record


def current(tx: Tx, keep_empty: bool = False) -> PolicyRecord | None:
    """The policy in force: None when none was applied, or the latest is empty (cleared)."""
    row = tx.one(_latest)
    if row is None or (not row["text"] and not keep_empty):
        return None
    return _record(row)


def _record(row: Row) -> PolicyRecord:
    at = to_datetime(row["applied_at"])
    assert at is not None
    return PolicyRecord(
        int(row["version"]), str(row["text"]), str(row["sha256"]), at, str(row["applied_by"])
    )
