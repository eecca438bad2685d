"""The console under load, offscreen: 100,000 runs in the store, then 1,000 runs pausing at once.

    .venv/bin/python bench/ui_bench.py [--runs 100000] [--waiting 20000] [--burst 1000]

Figures (targets from the console issue):

* ``populate_s``: from building the console (engine, bridge, model, window) to the table holding
  its first page and painted, on a store of ``--runs`` runs (target ≤ 1 s);
* ``worst_lag_ms``: the worst delay of a 5 ms timer on the GUI loop while another process makes
  ``--burst`` runs pause within about a second, and the console shows them (target ≤ 50 ms);
* ``rss_mb``: the console process's peak resident memory (target ≤ 300 MB).

Filling the store fast: one run of each kind (waiting on a token; completed) is made through the
engine, then copied ``--runs`` times with plain ``sqlite3`` (new ids, times 1 ms apart), column by
column as the store has them, in one transaction. The copies are ordinary rows to the engine: the
console pages through them with `list_runs` like any others. The burst comes from a driver
process (``--driver``) with its own started engine, as a second console or an agent would.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hitl_desktop.engine import Engine, RunContext, RunStatus, task, wait  # noqa: E402

TARGETS = {"populate_s": 1.0, "worst_lag_ms": 50.0, "rss_mb": 300.0}


@task("bench-review")
async def bench_review(ctx: RunContext, payload: Any) -> dict[str, Any]:
    """A run that waits for a reviewer, as db-change does, without a target database."""
    token = await wait.create_token(timeout="2h", tags=["bench"])
    result = await wait.for_token(token)
    return {"outcome": "applied" if result.ok else "expired", "message": "bench", "rows": 1}


# ---------------------------------------------------------------- filling the store


async def _templates(url: str) -> tuple[str, str]:
    engine = Engine(url, tasks=[bench_review], synchronous="OFF")
    await engine.start()
    try:
        waiting = await engine.trigger("bench-review", {"request": "Refund $1 on invoice 1"})
        done = await engine.trigger("bench-review", {"request": "Refund $2 on invoice 2"})
        await engine.wait_for(waiting.id, [RunStatus.WAITING])
        run = await engine.wait_for(done.id, [RunStatus.WAITING])
        assert run.waiting_token_id is not None
        await engine.complete_token(run.waiting_token_id, {"decision": "approve"})
        await engine.wait_for(done.id, [RunStatus.COMPLETED])
        return waiting.id, done.id
    finally:
        await engine.stop()


def _copy(db: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    marks = ", ".join("?" for _ in columns)
    db.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
        [tuple(r[c] for c in columns) for r in rows],
    )


def _one(db: sqlite3.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    cursor = db.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def fill_store(path: Path, runs: int, waiting: int) -> float:
    """*runs* runs in the store at *path* (*waiting* of them waiting); returns seconds taken."""
    started = time.perf_counter()
    url = f"sqlite:///{path}"
    waiting_id, done_id = asyncio.run(_templates(url))
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    templates = {}
    for kind, run_id in (("waiting", waiting_id), ("done", done_id)):
        run = _one(db, "SELECT * FROM hitl_runs WHERE id = ?", run_id)[0]
        token = _one(db, "SELECT * FROM hitl_tokens WHERE run_id = ?", run_id)[0]
        tags = _one(db, "SELECT * FROM hitl_token_tags WHERE token_id = ?", token["id"])
        steps = _one(db, "SELECT * FROM hitl_steps WHERE run_id = ?", run_id)
        templates[kind] = (run, token, tags, steps)
    base = time.time() - runs / 1000 - 60
    now = time.time()
    batch: dict[str, list[dict[str, Any]]] = {"runs": [], "tokens": [], "tags": [], "steps": []}

    def flush() -> None:
        _copy(db, "hitl_runs", batch["runs"])
        _copy(db, "hitl_tokens", batch["tokens"])
        _copy(db, "hitl_token_tags", batch["tags"])
        _copy(db, "hitl_steps", batch["steps"])
        for rows in batch.values():
            rows.clear()

    with db:
        for n in range(runs):
            # The newest runs wait: the Waiting view's first page is the newest waiting runs.
            kind = "waiting" if n >= runs - waiting else "done"
            run, token, tags, steps = templates[kind]
            run_id, token_id = f"run_bench{n:08d}", f"tok_bench{n:08d}"
            at = base + n / 1000
            batch["runs"].append(
                {
                    **run,
                    "id": run_id,
                    "created_at": at,
                    "updated_at": at,
                    "finished_at": None if kind == "waiting" else at,
                    "waiting_token_id": token_id if kind == "waiting" else None,
                    "idempotency_key": None,
                    "owner": None,
                    "payload": json.dumps({"request": f"Refund ${n % 500} on invoice {n}"}),
                }
            )
            batch["tokens"].append(
                {
                    **token,
                    "id": token_id,
                    "run_id": run_id,
                    "created_at": at,
                    "expires_at": now + 7200,
                    "idempotency_key": None,
                }
            )
            batch["tags"] += [{**t, "token_id": token_id} for t in tags]
            batch["steps"] += [
                {**s, "run_id": run_id, "result": s["result"].replace(token["id"], token_id)}
                if isinstance(s["result"], str)
                else {**s, "run_id": run_id}
                for s in steps
            ]
            if len(batch["runs"]) >= 5000:
                flush()
        flush()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - started


# ---------------------------------------------------------------- the burst (another process)


async def drive(url: str, burst: int, seconds: float) -> None:
    """Trigger *burst* runs over about *seconds*; they pause in this process's engine."""
    engine = Engine(url, tasks=[bench_review], synchronous="NORMAL")
    await engine.start()
    try:
        started = time.perf_counter()
        waves = 20
        per_wave = max(1, burst // waves)
        ids: list[str] = []
        for wave in range(waves):
            count = per_wave if wave < waves - 1 else burst - per_wave * (waves - 1)
            runs = await asyncio.gather(
                *(
                    engine.trigger("bench-review", {"request": f"Burst {wave}.{i}"})
                    for i in range(count)
                )
            )
            ids += [r.id for r in runs]
            await asyncio.sleep(
                max(0.0, started + (wave + 1) * seconds / waves - time.perf_counter())
            )
        for run_id in ids:
            await engine.wait_for(run_id, [RunStatus.WAITING], timeout=60)
        print(json.dumps({"burst_s": round(time.perf_counter() - started, 3)}), flush=True)
    finally:
        await engine.stop()


# ---------------------------------------------------------------- the console


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(args: argparse.Namespace, store: Path, workdir: Path) -> dict[str, Any]:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from hitl_desktop.config import Settings, sqlite_url
    from hitl_desktop.ui.app import ConsoleApp
    from hitl_desktop.ui.records import View

    qapp = QApplication.instance()
    assert qapp is not None
    settings = Settings(
        data_dir=workdir, store_url=sqlite_url(store), config_dir=workdir / "config"
    )
    started = time.perf_counter()
    app = ConsoleApp(settings, tray=False, state_file=workdir / "window.ini")
    app.window.resize(1280, 800)
    await app.start()
    await asyncio.sleep(0)  # never processEvents() inside a task: "Cannot enter into task"
    app.window.repaint()
    populate_s = time.perf_counter() - started
    first_page = app.model.rowCount()
    figures: dict[str, Any] = {"populate_s": round(populate_s, 3), "first_page_rows": first_page}
    try:
        # Details of the painted rows, then one more page as a scroll to the bottom asks for.
        await app.console.idle(30)
        started = time.perf_counter()
        app.window.table.scrollToBottom()
        while app.model.rowCount() <= first_page:
            await asyncio.sleep(0.002)
        figures["next_page_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        app.window.set_view(View.ALL)
        while app.model.rowCount() == 0:
            await asyncio.sleep(0.002)
        figures["all_view_s"] = round(time.perf_counter() - started, 3)
        app.window.set_view(View.WAITING)
        await app.console.idle(30)
        before = app.model.rowCount()

        # The event loop's lag while another process pauses the burst.
        lags: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            lags.append((now - last[0]) * 1000 - 5)
            last[0] = now

        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(tick)
        # The same timer on the idle console first: what this machine's scheduler alone costs.
        last[0] = time.perf_counter()
        timer.start()
        await asyncio.sleep(1.0)
        timer.stop()
        figures["idle_worst_lag_ms"] = round(max(lags), 1) if lags else None
        lags.clear()
        driver = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, __file__, "--driver", settings.store_url, "--burst", str(args.burst)],
            stdout=subprocess.PIPE,
            text=True,
        )
        burst_started = last[0] = time.perf_counter()
        timer.start()
        out, _ = await asyncio.to_thread(driver.communicate, None, 120)
        deadline = time.perf_counter() + 30
        while app.model.rowCount() < before + args.burst and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        shown_at = time.perf_counter()
        await asyncio.sleep(0.3)
        timer.stop()
        burst = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        figures["burst_s"] = burst.get("burst_s")
        figures["burst_rows_shown"] = app.model.rowCount() - before
        figures["all_shown_s"] = round(shown_at - burst_started, 3)
        figures["worst_lag_ms"] = round(max(lags), 1) if lags else None
        figures["p99_lag_ms"] = round(sorted(lags)[int(len(lags) * 0.99)], 1) if lags else None
        figures["ticks"] = len(lags)
    finally:
        await app.stop()
    figures["rss_mb"] = round(rss_mb(), 1)
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)  # other processes skew the lag
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--waiting", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--store", type=Path, help="reuse (or create) this store file")
    parser.add_argument("--driver", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        asyncio.run(drive(args.driver, args.burst, 1.0))
        return 0

    with tempfile.TemporaryDirectory(prefix="hitl-ui-bench-") as tmp:
        workdir = Path(tmp)
        store = args.store or workdir / "runs.db"
        if not store.exists():
            fill_s = fill_store(store, args.runs, args.waiting)
            what = f"{args.runs:,} runs ({args.waiting:,} waiting)"
            print(f"filled the store with {what} in {fill_s:.1f} s")

        import qasync
        from PySide6.QtWidgets import QApplication

        qapp = QApplication.instance() or QApplication(sys.argv[:1])
        loop = qasync.QEventLoop(qapp)
        asyncio.set_event_loop(loop)
        with loop:
            figures = loop.run_until_complete(measure(args, store, workdir))
    for name, target in TARGETS.items():
        value = figures.get(name)
        verdict = "met" if value is not None and value <= target else "NOT met"
        print(f"{name}: {value} (target ≤ {target:g}: {verdict})")
    for name, value in figures.items():
        if name not in TARGETS:
            print(f"{name}: {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
