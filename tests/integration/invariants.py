"""What must hold after any number of kills: read the store and the log, list the violations.

The checker is a pure function of a store snapshot and the parsed log, so a test can feed it
a deliberately corrupted log or store and see that it notices.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitl_desktop.engine import Engine

from .workload import TASK


@dataclass
class RunSnapshot:
    id: str
    key: str | None
    status: str
    output: Any
    history: list[tuple[int, str, str, bool, Any]]  # position, kind, name, ok, result
    tokens: list[tuple[str, str, Any]]  # id, status, output


@dataclass
class Snapshot:
    runs: list[RunSnapshot] = field(default_factory=list)
    waiting_tokens: list[str] = field(default_factory=list)


async def snapshot(store_url: str) -> Snapshot:
    """Everything the checker needs, read through the engine's public API (no execution)."""
    engine = Engine(store_url)
    await engine.open()
    try:
        snap = Snapshot()
        for run in await engine.list_runs(task=TASK, limit=10_000):
            steps = await engine.get_steps(run.id)
            tokens = await engine.list_tokens(run_id=run.id, limit=1000)
            key = run.idempotency_key or (run.payload or {}).get("key")
            snap.runs.append(
                RunSnapshot(
                    id=run.id,
                    key=key,
                    status=str(run.status),
                    output=run.output,
                    history=[(s.position, s.kind, s.name, s.ok, s.result) for s in steps],
                    tokens=[(t.id, str(t.status), t.output) for t in tokens],
                )
            )
        snap.waiting_tokens = [
            t.id for t in await engine.list_tokens(status="WAITING", limit=10_000)
        ]
        return snap
    finally:
        await engine.stop()


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's entries in order. A line that is not JSON is kept as {"kind": "garbled"}."""
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            entries.append({"kind": "garbled", "line": line})
    return entries


def violations(snap: Snapshot, log: list[dict[str, Any]], n_runs: int, kills: int) -> list[str]:
    """Every broken invariant, as a readable sentence; empty when the trial is sound."""
    found: list[str] = []
    found += [f"garbled log line {e['line']!r}" for e in log if e["kind"] == "garbled"]

    executions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    tries: dict[str, set[str]] = defaultdict(set)
    completed: dict[str, list[str]] = defaultdict(list)
    for e in log:
        if e["kind"] == "step":
            executions[(e["run"], e["step"])].append(e)
        elif e["kind"] == "complete-try":
            tries[e["token"]].add(e["nonce"])
        elif e["kind"] == "completed":
            completed[e["token"]].append(e["nonce"])

    keys = [r.key for r in snap.runs]
    expected_keys = [f"r{i}" for i in range(n_runs)]
    if sorted(k or "" for k in keys) != sorted(expected_keys):
        found.append(
            f"runs in the store have keys {sorted(map(str, keys))}, expected {expected_keys}"
        )
    logged_runs = {run for run, _ in executions}
    if logged_runs - set(expected_keys):
        found.append(f"steps executed for unknown runs {sorted(logged_runs - set(expected_keys))}")

    all_token_ids: set[str] = set()
    for run in snap.runs:
        where = f"run {run.key} ({run.id})"
        if run.status != "COMPLETED":
            found.append(f"{where} is {run.status}, not COMPLETED")
        token_ids = [t[0] for t in run.tokens]
        expected = [
            (0, "step", "a"),
            (1, "token", "create_token"),
            (2, "wait", None),
            (3, "step", "b"),
        ]
        history = [(p, k, None if k == "wait" else n) for p, k, n, *_ in run.history]
        waits = [n for _, k, n, *_ in run.history if k == "wait"]
        if history != expected or waits != token_ids[:1]:
            found.append(f"{where} has history {[(p, k, n) for p, k, n, *_ in run.history]}")
        recorded = {
            name: result for _, kind, name, ok, result in run.history if kind == "step" and ok
        }

        # No finished step ran again: the store holds the nonce of the step's last execution.
        for step in ("a", "b"):
            runs_of_step = executions.get((run.key or "", step), [])
            if step not in recorded:
                if run.status == "COMPLETED":
                    found.append(f"{where}: step {step} has no successful record")
                continue
            nonce = (recorded[step] or {}).get("nonce")
            if not runs_of_step:
                found.append(f"{where}: step {step} recorded {nonce} but never executed")
                continue
            if runs_of_step[-1]["nonce"] != nonce:
                logged = [e["nonce"] for e in runs_of_step]
                found.append(
                    f"{where}: step {step} ran again after it was recorded: the store holds "
                    f"{nonce}, the log's executions are {logged}"
                )
            if len(runs_of_step) > 1 + kills:
                found.append(
                    f"{where}: step {step} executed {len(runs_of_step)} times "
                    f"with only {kills} kills"
                )

        # Exactly one token, completed exactly once, and the run saw that completion.
        if len(run.tokens) != 1:
            found.append(f"{where} has {len(run.tokens)} tokens: {run.tokens}")
        for token_id, status, output in run.tokens:
            all_token_ids.add(token_id)
            if status != "COMPLETED":
                found.append(f"{where}: token {token_id} is {status}")
                continue
            nonce = (output or {}).get("nonce")
            if nonce not in tries.get(token_id, set()):
                found.append(
                    f"{where}: token {token_id} holds {nonce}, which nobody tried to give it"
                )
            done = completed.get(token_id, [])
            if len(done) > 1:
                found.append(f"{where}: token {token_id} was completed {len(done)} times: {done}")
            if done and done[0] != nonce:
                found.append(
                    f"{where}: token {token_id} holds {nonce} "
                    f"but complete_token succeeded with {done[0]}"
                )
            b = recorded.get("b") or {}
            if "b" in recorded and b.get("decision") != output:
                found.append(
                    f"{where}: step b saw decision {b.get('decision')}, the token holds {output}"
                )
        if run.status == "COMPLETED":
            want = {
                "a": (recorded.get("a") or {}).get("nonce"),
                "b": (recorded.get("b") or {}).get("nonce"),
                "decision": (recorded.get("b") or {}).get("decision"),
            }
            if run.output != want:
                found.append(f"{where}: output {run.output} does not match its steps {want}")

    strangers = (set(completed) | set(tries)) - all_token_ids
    if strangers:
        found.append(f"completions logged for tokens no run holds: {sorted(strangers)}")
    if snap.waiting_tokens:
        found.append(f"tokens left WAITING: {snap.waiting_tokens}")
    return found
