"""The audit trail: entries appended in the transactions whose changes they record, each
carrying a hash over its content and the previous entry's hash, so that changing, removing or
inserting an entry breaks the chain at that entry.

An entry's hash is SHA-256 over its fields as netstrings (`len:text`, `~` for NULL): id, at,
actor, kind, run_id, token_id, data, prev_hash. On SQLite this module computes it (one writer
at a time: BEGIN IMMEDIATE); on PostgreSQL a trigger does (postgres.py), under the event log's
lock, with the server's clock and the session's role, whatever a client inserts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from hashlib import sha256

import sqlalchemy as sa

from .. import serde
from ..models import AuditBreak, AuditEntry
from . import statements as sql
from .tx import Prepared, Tx

GENESIS = "0" * 64
"""The previous hash of the first entry."""
TRIGGER_ENTRIES = ("RevertRequested",)
"""The entries a run may be triggered with (`Engine.trigger(audit=...)`): on PostgreSQL the
store's function `hitl_note_run` appends them for any role allowed to trigger runs, and no
other kind, so that a reviewer, who may not write the trail, cannot put words in it either."""
AUDIT = sql.AUDIT
_insert = Prepared(AUDIT.insert().values({c.name: sa.bindparam(c.name) for c in AUDIT.c}))
_insert_on_server = Prepared(
    AUDIT.insert().values({c.name: sa.bindparam(c.name) for c in AUDIT.c if c.name != "id"})
)
_last = Prepared(sa.select(AUDIT.c.id, AUDIT.c.hash).order_by(AUDIT.c.id.desc()).limit(1))
PAGE = 1000


def _field(value: str | None) -> str:
    return "~" if value is None else f"{len(value)}:{value}"


def entry_hash(
    entry_id: int,
    at: str,
    actor: str,
    kind: str,
    run_id: str | None,
    token_id: str | None,
    data: str | None,
    prev_hash: str,
) -> str:
    f = _field
    text = f"{f(str(entry_id))}{f(at)}{f(actor)}{f(kind)}"
    text += f"{f(run_id)}{f(token_id)}{f(data)}{f(prev_hash)}"
    return sha256(text.encode()).hexdigest()


def timestamp(epoch: float) -> str:
    """ISO 8601 UTC with microseconds and a Z (isoformat: strftime's %f costs several times more
    per entry)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def append(
    tx: Tx,
    kind: str,
    run_id: str | None,
    token_id: str | None,
    data: str | None,
    actor: str,
    now: float,
) -> None:
    """Append an entry; *data* is JSON text, kept as written (the hash covers these bytes)."""
    row = {"kind": kind, "run_id": run_id, "token_id": token_id, "data": data}
    if tx.dialect == "postgresql":  # the trigger fills in the rest
        tx.before_log()  # the event log's lock: one lock order for both
        tx.execute(_insert_on_server, {**row, "at": "", "actor": "", "prev_hash": "", "hash": ""})
        return
    head = tx.audit_head()  # known while no other connection has committed since
    if head is None:
        last = tx.one(_last)
        head = (0, GENESIS) if last is None else (int(last["id"]), str(last["hash"]))
    entry_id, prev = head[0] + 1, head[1]
    at = timestamp(now)
    digest = entry_hash(entry_id, at, actor, kind, run_id, token_id, data, prev)
    tx.execute(
        _insert,
        {**row, "id": entry_id, "at": at, "actor": actor, "prev_hash": prev, "hash": digest},
    )
    tx.audit_appended(entry_id, digest)


_note_run = sa.text("SELECT hitl_note_run(:run, :kind, :about)")


def note_run(tx: Tx, kind: str, about: str, run_id: str, task: str, actor: str, now: float) -> None:
    """Append the *kind* entry about run *about* that names the run *run_id* just triggered in
    this transaction. On PostgreSQL through the store's function, which checks that the session
    triggered that run and that no such entry names it yet."""
    if kind not in TRIGGER_ENTRIES:
        raise ValueError(
            f"a run cannot be triggered with a {kind!r} audit entry "
            f"(only {', '.join(TRIGGER_ENTRIES)})"
        )
    if tx.dialect == "postgresql":
        tx.before_log()
        tx.execute(_note_run, {"run": run_id, "kind": kind, "about": about})
        return
    append(tx, kind, about, None, serde.encode({"run": run_id, "task": task}), actor, now)


def entries(
    tx: Tx, after: int, limit: int = PAGE, since: str | None = None, run_id: str | None = None
) -> list[AuditEntry]:
    """Entries with an id above *after*, oldest first (and *since*: at or after that ISO time;
    *run_id*: about that run only)."""
    q = sa.select(AUDIT).where(AUDIT.c.id > after).order_by(AUDIT.c.id).limit(limit)
    if since is not None:
        q = q.where(AUDIT.c.at >= since)
    if run_id is not None:
        q = q.where(AUDIT.c.run_id == run_id)
    return [
        AuditEntry(
            id=int(r["id"]),
            at=str(r["at"]),
            actor=str(r["actor"]),
            kind=str(r["kind"]),
            run_id=r["run_id"],
            token_id=r["token_id"],
            data=r["data"],
            prev_hash=str(r["prev_hash"]),
            hash=str(r["hash"]),
        )
        for r in tx.all(q)
    ]


def first_break(chain: Iterable[AuditEntry], prev: str = GENESIS) -> AuditBreak | None:
    """The first entry that does not match its content or its predecessor, or None."""
    for entry in chain:
        if entry.prev_hash != prev:
            return AuditBreak(
                entry.id,
                "its previous hash is not the hash of the entry before it: an entry was "
                "removed or inserted before it, or changed",
            )
        fields = (entry.at, entry.actor, entry.kind, entry.run_id, entry.token_id, entry.data)
        if entry_hash(entry.id, *fields, entry.prev_hash) != entry.hash:
            return AuditBreak(entry.id, "its content does not match its hash: it was changed")
        prev = entry.hash
    return None
