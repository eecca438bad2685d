"""Rows read from the store, as the engine's records (models.py)."""

from __future__ import annotations

from .. import serde
from ..models import (
    RUN_STATUSES,
    TOKEN_STATUSES,
    Requirement,
    Run,
    Step,
    Token,
    Verdict,
    to_datetime,
)
from .records import EngineRecord
from .tx import Row


def run_record(row: Row, payload: str | None, output: str | None, cached: bool = False) -> Run:
    """*payload* and *output*: the JSON texts of the row's values (read out of line if large)."""
    created = to_datetime(row["created_at"])
    updated = to_datetime(row["updated_at"])
    assert created is not None and updated is not None
    return Run(
        id=str(row["id"]),
        task=str(row["task"]),
        status=RUN_STATUSES[row["status"]],
        payload=serde.load(payload),
        output=serde.load(output),
        error=row["error"],
        traceback=row["traceback"],
        tags=tuple(serde.load(row["tags"] or "[]")),
        created_at=created,
        updated_at=updated,
        finished_at=to_datetime(row["finished_at"]),
        waiting_token_id=row["waiting_token_id"],
        idempotency_key=row["idempotency_key"],
        is_cached=cached,
        created_by=row["created_by"],
    )


def token_record(
    row: Row,
    output: str | None,
    requirement: Requirement | None = None,
    verdicts: tuple[Verdict, ...] = (),
) -> Token:
    created = to_datetime(row["created_at"])
    expires = to_datetime(row["expires_at"])
    assert created is not None and expires is not None
    return Token(
        id=str(row["id"]),
        run_id=row["run_id"],
        status=TOKEN_STATUSES[row["status"]],
        tags=tuple(serde.load(row["tags"] or "[]")),
        created_at=created,
        expires_at=expires,
        completed_at=to_datetime(row["completed_at"]),
        output=serde.load(output),
        idempotency_key=row["idempotency_key"],
        completed_by=row["completed_by"],
        requirement=requirement,
        verdicts=verdicts,
    )


def step_record(row: Row, result: str | None) -> Step:
    started = to_datetime(row["started_at"])
    finished = to_datetime(row["finished_at"])
    assert started is not None and finished is not None
    return Step(
        run_id=str(row["run_id"]),
        position=int(row["position"]),
        kind=str(row["kind"]),
        name=str(row["name"]),
        ok=bool(row["ok"]),
        result=serde.load(result),
        error=row["error"],
        attempts=int(row["attempts"]),
        started_at=started,
        finished_at=finished,
    )


def engine_record(row: Row) -> EngineRecord:
    return EngineRecord(
        id=str(row["id"]),
        host=str(row["host"]),
        pid=int(row["pid"]),
        proc_start=row["proc_start"],
        started_at=float(row["started_at"]),
        heartbeat_at=float(row["heartbeat_at"]),
        stopped_at=None if row["stopped_at"] is None else float(row["stopped_at"]),
    )
