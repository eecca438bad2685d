"""The event log: how a change is announced, and how other processes read what changed.

A body that changes a run announces it in the same transaction, so a change and its
announcement commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from .. import serde
from . import statements as sql
from .records import Committed, EventRow, Polled
from .tx import Tx

EVENT_DATA_LIMIT = 16 * 1024
"""Outputs larger than this are not copied into the event log; readers fetch the run."""


def announce(
    tx: Tx,
    out: Committed,
    kind: str,
    run_id: str,
    now: float,
    origin: str,
    token_id: str | None = None,
    data: Any = None,
) -> None:
    """Announce a change: to this engine's subscribers always (out.events), and in the event
    log when another engine is attached to the store. The log exists for other processes;
    with none to read it, writing it would cost every commit a page for nothing."""
    text = None
    if tx.others_attached(origin):
        text = None if data is None else serde.encode(data)
        row = {
            "at": now,
            "origin": origin,
            "kind": kind,
            "run_id": run_id,
            "token_id": token_id,
            "data": text,
        }
        tx.before_log()
        tx.execute(sql.insert_event, row)
    out.events.append(EventRow(0, now, origin, kind, run_id, token_id, text, data))


def small(text: str | None) -> Any:
    """An output small enough to copy into an event, else None (readers fetch the run)."""
    if text is None or len(text) > EVENT_DATA_LIMIT:
        return None
    return serde.load(text)


def events_after(tx: Tx, after: int) -> list[EventRow]:
    return [
        EventRow(
            int(r["id"]),
            float(r["at"]),
            str(r["origin"]),
            str(r["kind"]),
            str(r["run_id"]),
            r["token_id"],
            r["data"],
        )
        for r in tx.all(sql.events_after, {"after": after})
    ]


def last_event_id(tx: Tx) -> int:
    row = tx.one(sql.last_event)
    return 0 if row is None or row["v"] is None else int(row["v"])


def poll(tx: Tx, known_version: int | None, after: int, origin: str) -> Polled:
    """One cheap check per poll: SQLite's data_version moves only when another connection
    committed; only then (or always, where the dialect has no such counter) read the log tail.

    The cursor moves to the last event read, this engine's own included (they are dropped
    here), never to a max(id) read apart: under READ COMMITTED each statement has its own
    snapshot, and an id taken from a later one could pass events the tail did not see."""
    version = tx.data_version()
    if version is not None and version == known_version:
        return Polled(version, [], None)
    rows: list[EventRow] = []
    for _ in range(10_000):  # every event there is, in pages (bounded: 5 million)
        page = events_after(tx, after)
        rows += page
        if not page:
            break
        after = page[-1].id
        if len(page) < sql.EVENT_PAGE:
            break
    return Polled(version, [r for r in rows if r.origin != origin], after)


def prune(tx: Tx, before: float) -> None:
    tx.execute(sql.EVENTS.delete().where(sql.EVENTS.c.at < before))
