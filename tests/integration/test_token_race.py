"""Two processes complete the same tokens at the same moment: each token is won exactly once."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from hitl_desktop.engine import Engine, RunStatus, TokenStatus

from .conftest import RACER, Launcher
from .invariants import read_log
from .workload import TAG, TASK, payload

N_TOKENS = 30


async def waiting_tokens(store_url: str, log: Path) -> dict[str, str]:
    """N_TOKENS runs paused on their tokens, with no engine left running: token id → run id."""
    engine = Engine(store_url)
    await engine.start()
    try:
        runs = [
            await engine.trigger(TASK, payload(f"r{i}", str(log)), idempotency_key=f"r{i}")
            for i in range(N_TOKENS)
        ]
        for run in runs:
            assert (await engine.wait_for(run.id, timeout=30)).status == RunStatus.WAITING
        tokens = await engine.list_tokens(status="WAITING", tags=[TAG], limit=N_TOKENS + 1)
    finally:
        await engine.stop()
    assert len(tokens) == N_TOKENS
    return {t.id: str(t.run_id) for t in sorted(tokens, key=lambda t: t.created_at)}


@pytest.mark.parametrize("modes", [("open", "open"), ("started", "started"), ("open", "started")])
async def test_complete_token_race_two_processes(
    launcher: Launcher, tmp_path: Path, modes: tuple[str, str]
) -> None:
    store_url, log = f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "log.jsonl"
    tokens = await waiting_tokens(store_url, log)
    (tmp_path / "tokens.json").write_text(json.dumps(list(tokens)))

    go = tmp_path / "go"
    racers = {}
    for identity, mode in zip(("alpha", "beta"), modes, strict=True):
        ready = tmp_path / f"ready-{identity}"
        proc = launcher.start(
            RACER, tmp_path / "runs.db", identity, tmp_path / "tokens.json", ready, go, mode
        )
        racers[identity] = (proc, ready)
    for proc, ready in racers.values():
        await asyncio.to_thread(launcher.wait_for_file, ready, proc)
    # The racers poll for GO; renamed into place so that they never read it half-written.
    (tmp_path / "go.tmp").write_text(repr(time.time() + 0.2))
    (tmp_path / "go.tmp").rename(go)
    results = {}
    for identity, (proc, _) in racers.items():
        code = await asyncio.to_thread(proc.wait, 60)
        assert code == 0, launcher.errors(proc)
        results[identity] = json.loads(launcher.output(proc))
    print(
        f"\n{modes}: alpha won {len(results['alpha']['won'])}, beta won "
        f"{len(results['beta']['won'])} of {N_TOKENS}"
    )

    for identity, result in results.items():
        assert result["errors"] == {}, f"{identity} got unexpected errors"
    winners: dict[str, list[str]] = {t: [] for t in tokens}
    for identity, result in results.items():
        for token_id in result["won"]:
            winners[token_id].append(identity)
    assert {t: w for t, w in winners.items() if len(w) != 1} == {}, "won by none or by both"
    for token_id, (winner,) in winners.items():
        loser = next(i for i in results if i != winner)
        assert results[loser]["lost"].get(token_id) == TokenStatus.COMPLETED, (token_id, loser)

    engine = Engine(store_url)
    await engine.start()  # resumes the runs the racers only queued (or stopped while running)
    try:
        for token_id, (winner,) in winners.items():
            token = await engine.get_token(token_id)
            assert token.status == TokenStatus.COMPLETED
            assert token.output == {"by": winner}
            run = await engine.wait_for(tokens[token_id], [RunStatus.COMPLETED, RunStatus.FAILED])
            assert run.status == RunStatus.COMPLETED, run.error
            assert run.output["decision"] == {"by": winner}
        assert await engine.list_tokens(status="WAITING") == []
    finally:
        await engine.stop()
    executions = [e for e in read_log(log) if e["kind"] == "step"]
    assert sorted(e["run"] for e in executions if e["step"] == "a") == sorted(
        f"r{i}" for i in range(N_TOKENS)
    ), "step a ran again on resume"
