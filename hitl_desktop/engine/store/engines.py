"""The registry of engines attached to a store: who is alive, and a clean sign-off."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from ..models import RunStatus
from . import statements as sql
from .records import EngineRecord
from .rows import engine_record
from .tx import Tx

ENGINES, RUNS = sql.ENGINES, sql.RUNS


def register(tx: Tx, engine: EngineRecord) -> None:
    tx.execute(
        ENGINES.insert().values(
            id=engine.id,
            host=engine.host,
            pid=engine.pid,
            proc_start=engine.proc_start,
            started_at=engine.started_at,
            heartbeat_at=engine.heartbeat_at,
        )
    )
    tx.registry_changed()


def heartbeat(tx: Tx, engine_id: str, now: float) -> None:
    tx.execute(ENGINES.update().where(ENGINES.c.id == engine_id).values(heartbeat_at=now))


def live(tx: Tx) -> list[EngineRecord]:
    return [
        engine_record(r) for r in tx.all(sa.select(ENGINES).where(ENGINES.c.stopped_at.is_(None)))
    ]


def owners_of_executing(tx: Tx) -> list[str]:
    executing = RUNS.c.status == sql.lit(RunStatus.EXECUTING)
    rows = tx.all(sa.select(RUNS.c.owner).where(executing, sql.LIVE).distinct())
    return [str(r["owner"]) for r in rows if r["owner"] is not None]


def mark_stopped(tx: Tx, engine_ids: Iterable[str], now: float) -> None:
    ids = list(engine_ids)
    if ids:
        stopping = ENGINES.c.id.in_(ids), ENGINES.c.stopped_at.is_(None)
        tx.execute(ENGINES.update().where(*stopping).values(stopped_at=now))
        tx.registry_changed()


def release(tx: Tx, engine_id: str, now: float, hand_back: bool = True) -> None:
    """A clean stop: hand back the runs this engine was executing, and sign off. An engine
    that executes nothing (*hand_back* False) touches no run: a reviewer's role may not."""
    if hand_back:
        tx.execute(
            RUNS.update()
            .where(
                RUNS.c.owner == engine_id, RUNS.c.status == sql.lit(RunStatus.EXECUTING), sql.LIVE
            )
            .values(status=RunStatus.QUEUED, owner=None, updated_at=now)
        )
    mark_stopped(tx, [engine_id], now)
