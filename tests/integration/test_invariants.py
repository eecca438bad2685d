"""The fault-injection checker must be able to fail: feed it a sound trial, then broken ones."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DRIVER, Launcher
from .invariants import read_log, snapshot, violations

N_RUNS = 6  # each way to wait (workload.wait_of) twice: r4 waits for all, r5 for any, 60 s
Log = list[dict[str, Any]]


@pytest.fixture(scope="module")
def clean_trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Log]]:
    """One driver run, never killed: a store and a log that satisfy every invariant."""
    directory = tmp_path_factory.mktemp("clean")
    procs = Launcher(directory)
    try:
        proc = procs.start(DRIVER, directory / "runs.db", directory / "log.jsonl", N_RUNS)
        assert proc.wait(timeout=90) == 0, procs.errors(proc)
    finally:
        procs.close()
    yield directory / "runs.db", read_log(directory / "log.jsonl")


GROUP = "id LIKE 'grp_%'"


def run_of(key: str) -> str:
    return f"(SELECT id FROM hitl_runs WHERE idempotency_key = '{key}')"


def check(store: Path, log: Log, kills: int = 0) -> list[str]:
    return violations(asyncio.run(snapshot(f"sqlite:///{store}")), log, N_RUNS, kills)


def first(log: Log, **match: Any) -> dict[str, Any]:
    return next(e for e in log if all(e.get(k) == v for k, v in match.items()))


def test_a_clean_trial_passes(clean_trial: tuple[Path, Log]) -> None:
    store, log = clean_trial
    assert check(store, log) == []


def rerun_after_record(log: Log) -> None:
    log.append({**first(log, kind="step", run="r0", step="a"), "nonce": "later"})


def rerun_too_often(log: Log) -> None:
    a = first(log, kind="step", run="r1", step="b")
    at = log.index(a)
    log[at:at] = [{**a, "nonce": "cut-off-1"}, {**a, "nonce": "cut-off-2"}]


def completed_twice(log: Log) -> None:
    done = first(log, kind="completed")
    log.append({**done, "kind": "complete-try", "nonce": "second"})
    log.append({**done, "nonce": "second"})


def completion_never_tried(log: Log) -> None:
    log[:] = [e for e in log if e["kind"] != "complete-try"]


def garbled(log: Log) -> None:
    log.append({"kind": "garbled", "line": '{"kind": "st'})


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (rerun_after_record, "ran again after it was recorded"),
        (rerun_too_often, "executed 3 times with only 0 kills"),
        (completed_twice, "was completed 2 times"),
        (completion_never_tried, "which nobody tried to give it"),
        (garbled, "garbled log line"),
    ],
)
def test_a_corrupted_log_is_caught(
    clean_trial: tuple[Path, Log], corrupt: Callable[[Log], None], expected: str
) -> None:
    store, log = clean_trial
    broken = [dict(e) for e in log]
    corrupt(broken)
    found = check(store, broken)
    assert any(expected in v for v in found), found


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            # hitl_tokens has no rowid (keyed by id): the first token.
            "UPDATE hitl_tokens SET status = 'WAITING' "
            "WHERE id = (SELECT min(id) FROM hitl_tokens)",
            "tokens left WAITING",
        ),
        ("UPDATE hitl_runs SET status = 'EXECUTING' WHERE rowid = 1", "not COMPLETED"),
        (
            # hitl_steps has no rowid (keyed by run_id, position): one run's step 3.
            "DELETE FROM hitl_steps WHERE position = 3 AND run_id = "
            "(SELECT min(run_id) FROM hitl_steps WHERE position = 3)",
            "has history",
        ),
        ("UPDATE hitl_runs SET idempotency_key = 'r9' WHERE rowid = 1", "expected ['r0'"),
        (
            # A group token's end that is not what its run resumed with.
            "UPDATE hitl_tokens SET status = CASE status WHEN 'COMPLETED' THEN 'TIMED_OUT' "
            f"ELSE 'COMPLETED' END WHERE id = (SELECT min(id) FROM hitl_tokens WHERE {GROUP})",
            "the group token is",
        ),
        (
            # r4's for_all resumed with its members' outputs: one member now holds another.
            'UPDATE hitl_tokens SET output = \'{"nonce": "forged"}\' WHERE id = (SELECT '
            f"min(id) FROM hitl_tokens WHERE run_id = {run_of('r4')} AND NOT {GROUP})",
            "the group's result has token",
        ),
        (
            # r4's for_all resumed, by its step b's record, with a member still open.
            "UPDATE hitl_steps SET result = replace(result, '\"COMPLETED\"', '\"WAITING\"') "
            f"WHERE position = 5 AND run_id = {run_of('r4')}",
            "for_all ended with only",
        ),
        (
            # r5's for_any resumed, by its step b's record, with none of its tokens finished.
            "UPDATE hitl_steps SET result = replace(result, '\"COMPLETED\"', '\"WAITING\"') "
            f"WHERE position = 5 AND run_id = {run_of('r5')}",
            "for_any ended with none of its tokens finished",
        ),
    ],
)
def test_a_corrupted_store_is_caught(
    clean_trial: tuple[Path, Log], tmp_path: Path, sql: str, expected: str
) -> None:
    store, log = clean_trial
    copy = tmp_path / "runs.db"
    with sqlite3.connect(store) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as db:
        assert db.execute(sql).rowcount == 1
    found = check(copy, log)
    assert any(expected in v for v in found), found
