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
    wait: str = "token"  # workload.WAITS: on one token, or wait.for_all / for_any on two


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
                    wait=str((run.payload or {}).get("wait", "token")),
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
        members, group_id, problems = _waited_on(run)
        found += [f"{where} {p}" for p in problems]
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

        # Every token the run created completed exactly once (a for_any's other token and a
        # timed-out group's members too: the driver completes every token it finds waiting).
        tokens = {token_id: (status, output) for token_id, status, output in run.tokens}
        expected_ids = {*members, *([group_id] if group_id else [])}
        if set(tokens) != expected_ids:
            found.append(f"{where} has tokens {run.tokens}, expected {sorted(expected_ids)}")
        all_token_ids.update(tokens)
        for token_id in members:
            status, output = tokens.get(token_id, ("missing", None))
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

        # The run resumed with what the store holds: the token's output, or the group's result.
        if "b" in recorded:
            seen = (recorded.get("b") or {}).get("decision")
            if group_id is None:
                if members and seen != tokens.get(members[0], (None, None))[1]:
                    found.append(
                        f"{where}: step b saw decision {seen}, the token holds "
                        f"{tokens.get(members[0])}"
                    )
            else:
                group = tokens.get(group_id, ("missing", None))
                found += [
                    f"{where}: {p}"
                    for p in _group_violations(run.wait, seen, members, group, tokens)
                ]
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


def _waited_on(run: RunSnapshot) -> tuple[list[str], str | None, list[str]]:
    """The tokens *run* created and the group it waited on (None for one token), from its
    history, and what is wrong with that history."""
    group = run.wait != "token"
    expected: list[tuple[int, str, str | None]] = [(0, "step", "a"), (1, "token", "create_token")]
    if group:
        expected += [(2, "token", "create_token"), (3, "token", f"for_{run.wait}")]
    expected += [(len(expected), "wait", None), (len(expected) + 1, "step", "b")]
    history = [(p, k, None if k == "wait" else n) for p, k, n, *_ in run.history]
    made = [result for _, k, n, ok, result in run.history if (k, n) == ("token", "create_token")]
    members = [str((info or {}).get("id")) for info in made]
    waits = [n for _, k, n, *_ in run.history if k == "wait"]
    group_id = None
    problems = []
    if group:
        info = next((r for _, k, n, _, r in run.history if n == f"for_{run.wait}"), None) or {}
        group_id = str(info.get("id"))
        if info.get("members") != members:
            problems.append(f"waited for {info.get('members')}, it created {members}")
    waited = group_id if group else next(iter(members), None)
    if history != expected or waits != [waited]:
        problems.append(f"has history {[(p, k, n) for p, k, n, *_ in run.history]}")
    return members, group_id, problems


def _group_violations(
    mode: str,
    seen: Any,
    members: list[str],
    group: tuple[str, Any],
    tokens: dict[str, tuple[str, Any]],
) -> list[str]:
    """What is wrong with the result a for_all / for_any (*mode* "all" / "any") run resumed
    with (*seen*, as workload.describe records it), given its group token's (status, output)
    and its members' (status, output) now."""
    found: list[str] = []
    status, snapshot = group
    results = (seen or {}).get("results") or []
    if [r[0] for r in results] != members:
        return [f"the group's result {seen} is not about its tokens {members}"]
    if status not in ("COMPLETED", "TIMED_OUT"):
        return [f"its group token is {status}"]
    timed_out = bool(seen.get("timed_out"))
    if timed_out != (status == "TIMED_OUT"):
        found.append(f"the group token is {status}, the run saw timed_out={timed_out}")
    states = [(m.get("token_id"), m.get("status")) for m in (snapshot or {}).get("members", [])]
    if states != [(r[0], r[1]) for r in results]:
        found.append(f"the run saw {results}, the group token recorded {states}")
    finished = [r[0] for r in results if r[1] != "WAITING"]
    if not timed_out and mode == "all" and finished != members:
        found.append(f"for_all ended with only {finished} of {members} finished")
    if not timed_out and mode == "any" and not finished:
        found.append("for_any ended with none of its tokens finished")
    if seen.get("first") is not None and seen.get("first") not in finished:
        found.append(f"for_{mode}'s first {seen.get('first')} had not finished")
    if finished and seen.get("first") is None:
        found.append(f"for_{mode} names no first token though {finished} finished")
    for token_id, state, output in results:
        held = tokens.get(token_id, ("missing", None))
        if state != "WAITING" and (state, output) != held:
            found.append(
                f"the group's result has token {token_id} {state} with {output}, "
                f"the token is {held[0]} with {held[1]}"
            )
    return found
