"""The audit trail under load and under tampering: decisions from several processes at once
chain without a fork or a gap, and every way of rewriting the trail behind the engine's back
is found and named at its first bad entry, except the two a hash chain alone cannot see."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hitl_desktop.cli import main
from hitl_desktop.engine import AuditEntry, AuditReport, Engine, RunStatus
from hitl_desktop.engine.store.audit import GENESIS, entry_hash
from tests import pg
from tests.engine.audit_process import audited_chain

REPO = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT = 120.0
"""Seconds a reviewer process may take to start, or to work through its share."""
CHANGED = "its content does not match its hash: it was changed"
MOVED = (
    "its previous hash is not the hash of the entry before it: "
    "an entry was removed or inserted before it, or changed"
)
ACTIONS = ("approve", "reject", "decide-approve", "decide-reject", "cancel")
EXPIRES = 10
"""Every EXPIRES-th run waits on a token that expires almost at once."""
EXPECTED_KINDS = {
    "approve": ["TokenCompleted", "RunCompleted"],
    "reject": ["TokenCompleted", "RunCompleted"],
    "decide-approve": ["Decision", "RunCompleted"],
    "decide-reject": ["Decision", "RunCompleted"],
    "cancel": ["RunCanceled"],
    "expire": ["TokenTimedOut", "RunCompleted"],
}


@pytest.fixture
def pg_store() -> Iterator[str]:
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_chain")
    try:
        yield url
    finally:
        pg.drop_database(name)


async def _all_entries(engine: Engine) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for _ in range(1000):  # bounded: pages of 1,000
        page = await engine.audit_entries(entries[-1].id if entries else 0, limit=1000)
        if not page:
            break
        entries += page
    return entries


# ---------------------------------------------------------------- under load


async def _waiting_tokens(engine: Engine, run_ids: set[str]) -> dict[str, str]:
    """The token each of *run_ids* waits on, once all of them wait."""
    found: dict[str, str] = {}
    for _ in range(600):  # bounded: 60 s
        tokens = await engine.list_tokens("WAITING", limit=10 * len(run_ids) + 100)
        found = {str(t.run_id): t.id for t in tokens if t.run_id in run_ids}
        if len(found) == len(run_ids):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(found)} of {len(run_ids)} runs came to wait on a token")


async def _all_ended(engine: Engine, completed: int, canceled: int) -> None:
    counts: dict[str, int] = {}
    for _ in range(1200):  # bounded: 120 s
        counts = await engine.count_runs()
        if (counts.get(RunStatus.COMPLETED, 0), counts.get(RunStatus.CANCELED, 0)) == (
            completed,
            canceled,
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"runs by status {counts}, expected {completed} completed and {canceled} canceled"
    )


async def _reviewers(url: str, plans: list[list[tuple[str, str]]], tmp: Path) -> list[Counter[str]]:
    """Start one reviewer process per plan, let them all go at once, wait for them to end."""
    procs = []
    try:
        for i, plan in enumerate(plans):
            plan_file = tmp / f"plan-{i}.json"
            plan_file.write_text(json.dumps(plan))
            procs.append(
                await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "tests.engine.audit_process", url, str(plan_file)),
                    cwd=REPO,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), PROCESS_TIMEOUT)
            assert line == b"ready\n", line
        ends = await asyncio.wait_for(
            asyncio.gather(*(proc.communicate(b"go\n") for proc in procs)), PROCESS_TIMEOUT
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    done = []
    for proc, (out, err) in zip(procs, ends, strict=True):
        assert proc.returncode == 0, err.decode()
        done.append(Counter(json.loads(out)))
    return done


async def _decide_from_processes(url: str, tmp: Path, n: int, processes: int) -> None:
    """Trigger *n* runs, let *processes* reviewer processes decide or cancel them (some
    expire instead), and check the trail each left: one entry per change, one chain."""
    async with Engine(url, tasks=[audited_chain]) as worker:
        what: dict[str, str] = {}  # run id -> what happens to it
        for i in range(n):
            expiring = i % EXPIRES == EXPIRES - 1
            run = await worker.trigger("audited-chain", {"timeout": 0.3 if expiring else "1h"})
            what[run.id] = "expire" if expiring else ACTIONS[i % len(ACTIONS)]
        decided = {run_id for run_id, action in what.items() if action != "expire"}
        tokens = await _waiting_tokens(worker, decided)
        plans: list[list[tuple[str, str]]] = [[] for _ in range(processes)]
        for i, run_id in enumerate(sorted(decided)):
            action = what[run_id]
            plans[i % processes].append((action, run_id if action == "cancel" else tokens[run_id]))
        done = await _reviewers(url, plans, tmp)
        assert sum(done, Counter()) == Counter(what[r] for r in decided)
        canceled = sum(1 for action in what.values() if action == "cancel")
        await _all_ended(worker, n - canceled, canceled)

        entries = await _all_entries(worker)
        report = await worker.verify_audit()
    assert report.broken is None and report.entries == len(entries)
    expected = Counter(kind for action in what.values() for kind in EXPECTED_KINDS[action])
    assert Counter(e.kind for e in entries) == expected
    assert len(entries) == sum(expected.values())
    by_run: dict[str, list[AuditEntry]] = {}
    for e in entries:
        by_run.setdefault(str(e.run_id), []).append(e)
    for run_id, action in what.items():
        assert [e.kind for e in by_run[run_id]] == EXPECTED_KINDS[action], (run_id, action)
        first = by_run[run_id][0]
        if action in ("approve", "reject"):
            assert first.data == json.dumps({"approve": action == "approve"}, separators=(",", ":"))
        elif action.startswith("decide-"):
            assert json.loads(str(first.data))["verdict"] == action.removeprefix("decide-")
    assert len({e.prev_hash for e in entries}) == len(entries)  # no two share a parent: no fork
    assert all(a.id < b.id for a, b in itertools.pairwise(entries))
    assert [e.id for e in entries] == list(range(1, len(entries) + 1))  # a gap is a removal
    assert [e.prev_hash for e in entries] == [GENESIS] + [e.hash for e in entries[:-1]]
    assert report.head == entries[-1].hash


async def test_1000_decisions_from_4_processes_on_postgresql_chain_without_fork_or_gap(
    pg_store: str, tmp_path: Path
) -> None:
    await _decide_from_processes(pg_store, tmp_path, 1000, 4)


async def test_200_decisions_from_2_processes_on_sqlite_chain_without_fork_or_gap(
    tmp_path: Path,
) -> None:
    await _decide_from_processes(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path, 200, 2)


# ---------------------------------------------------------------- under tampering

Tamper = Callable[[sa.Connection, list[int]], None]
"""Rewrites the trail, given its entries' ids in order: entry n (from 1) is ids[n - 1]."""
CONTENT = ("at", "actor", "kind", "run_id", "token_id", "data")
CHAIN = ("prev_hash", "hash")


async def _three_decisions(url: str) -> list[AuditEntry]:
    """Six entries: TokenCompleted and RunCompleted of three runs."""
    async with Engine(url, tasks=[audited_chain], actor="ana") as engine:
        for approve in (True, False, True):
            run = await engine.trigger("audited-chain", {})
            waiting = await engine.wait_for(run.id, ["WAITING"], timeout=10)
            assert waiting.waiting_token_id is not None
            await engine.complete_token(waiting.waiting_token_id, {"approve": approve})
            await engine.wait_for(run.id, ["COMPLETED"], timeout=10)
        entries = await engine.audit_entries()
    assert [e.kind for e in entries] == ["TokenCompleted", "RunCompleted"] * 3
    return entries


def _rewrite(url: str, tamper: Tamper) -> None:
    """Run *tamper* as the store's owner could: on PostgreSQL with the trail's append-only
    and chaining triggers switched off for it (and on again after, to hide it)."""
    postgres = url.startswith("postgresql://")
    db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with db.begin() as conn:
            if postgres:
                conn.execute(sa.text("ALTER TABLE hitl_audit DISABLE TRIGGER USER"))
            ids = list(conn.execute(sa.text("SELECT id FROM hitl_audit ORDER BY id")).scalars())
            tamper(conn, ids)
            if postgres:
                conn.execute(sa.text("ALTER TABLE hitl_audit ENABLE TRIGGER USER"))
    finally:
        db.dispose()


def _sql(template: str) -> Tamper:
    """A statement naming entries as {e1} … {e6}, and {next}: the id after the last one."""

    def tamper(conn: sa.Connection, ids: list[int]) -> None:
        named = {f"e{n}": entry_id for n, entry_id in enumerate(ids, 1)}
        conn.execute(sa.text(template.format(**named, next=ids[-1] + 1)))

    return tamper


def _swap(a: int, b: int, columns: tuple[str, ...]) -> Tamper:
    """Exchange *columns* of entries *a* and *b*, each keeping its id."""

    def tamper(conn: sa.Connection, ids: list[int]) -> None:
        first, second = ids[a - 1], ids[b - 1]
        listed = ", ".join(columns)
        rows = {
            r.id: r._mapping
            for r in conn.execute(
                sa.text(f"SELECT id, {listed} FROM hitl_audit WHERE id IN ({first}, {second})")
            )
        }
        assigns = ", ".join(f"{c} = :{c}" for c in columns)
        for this, other in ((first, second), (second, first)):
            values = {c: rows[other][c] for c in columns}
            conn.execute(sa.text(f"UPDATE hitl_audit SET {assigns} WHERE id = {this}"), values)

    return tamper


def _forge_before(n: int, renumber: bool) -> Tamper:
    """Put a forged entry just before entry *n*, chained to the one before it with a hash
    computed as the engine would: in the id below entry n's when that one is free and not
    *renumber*, else in entry n's id, shifting entry n and all after it up by one."""

    def tamper(conn: sa.Connection, ids: list[int]) -> None:
        slot = ids[n - 1] - 1
        if renumber or slot == ids[n - 2]:
            slot = ids[n - 1]
            # Through negative ids: a unique index refuses `id = id + 1` midway.
            conn.execute(sa.text(f"UPDATE hitl_audit SET id = -id WHERE id >= {slot}"))
            conn.execute(sa.text("UPDATE hitl_audit SET id = 1 - id WHERE id < 0"))
        prev = conn.execute(
            sa.text(f"SELECT hash FROM hitl_audit WHERE id = {ids[n - 2]}")
        ).scalar_one()
        content = ("2026-01-01T00:00:00.000000Z", "ceo", "TokenCompleted", None, None, "{}")
        forged = dict(zip(("id", *CONTENT, "prev_hash"), (slot, *content, prev), strict=True))
        forged["hash"] = entry_hash(slot, *content, prev)
        conn.execute(
            sa.text(
                "INSERT INTO hitl_audit (id, at, actor, kind, run_id, token_id, data, prev_hash,"
                " hash) VALUES (:id, :at, :actor, :kind, :run_id, :token_id, :data, :prev_hash,"
                " :hash)"
            ),
            forged,
        )

    return tamper


def _recompute_from(n: int, data: str) -> Tamper:
    """Set entry *n*'s data, and recompute its hash and every later one's."""

    def tamper(conn: sa.Connection, ids: list[int]) -> None:
        first = ids[n - 1]
        conn.execute(
            sa.text(f"UPDATE hitl_audit SET data = :data WHERE id = {first}"), {"data": data}
        )
        prev = conn.execute(
            sa.text(f"SELECT hash FROM hitl_audit WHERE id = {ids[n - 2]}")
        ).scalar_one()
        rows = conn.execute(
            sa.text(
                f"SELECT id, {', '.join(CONTENT)} FROM hitl_audit WHERE id >= {first} ORDER BY id"
            )
        ).all()
        for row in rows:
            fields = (row.at, row.actor, row.kind, row.run_id, row.token_id, row.data)
            digest = entry_hash(row.id, *fields, prev)
            conn.execute(
                sa.text(
                    f"UPDATE hitl_audit SET prev_hash = :prev, hash = :hash WHERE id = {row.id}"
                ),
                {"prev": prev, "hash": digest},
            )
            prev = digest

    return tamper


async def _verified(url: str) -> tuple[AuditReport, list[AuditEntry]]:
    engine = Engine(url)
    try:
        return await engine.verify_audit(), await engine.audit_entries()
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("tamper", "first_bad", "reason"),
    [
        pytest.param(
            _sql("UPDATE hitl_audit SET data = replace(data, 'false', 'true') WHERE id = {e3}"),
            3,
            CHANGED,
            id="data",
        ),
        pytest.param(
            _sql("UPDATE hitl_audit SET actor = 'ceo' WHERE id = {e1}"), 1, CHANGED, id="actor"
        ),
        pytest.param(
            _sql("UPDATE hitl_audit SET at = '2026-01-01T00:00:00.000000Z' WHERE id = {e4}"),
            4,
            CHANGED,
            id="at",
        ),
        pytest.param(
            _sql("UPDATE hitl_audit SET kind = 'RunFailed' WHERE id = {e6}"), 6, CHANGED, id="kind"
        ),
        pytest.param(
            _sql(
                "UPDATE hitl_audit SET run_id = (SELECT run_id FROM hitl_audit WHERE id = {e6}) "
                "WHERE id = {e2}"
            ),
            2,
            CHANGED,
            id="run_id",
        ),
        # The entry that followed the deleted one is now the second.
        pytest.param(_sql("DELETE FROM hitl_audit WHERE id = {e2}"), 2, MOVED, id="delete"),
        pytest.param(_swap(2, 3, CONTENT + CHAIN), 2, MOVED, id="swap"),
        pytest.param(_swap(2, 3, CONTENT), 2, CHANGED, id="swap-content-keeping-hashes"),
        # The forged third entry matches (its hash was computed as the engine would): the
        # first entry that does not is the one it was slipped in front of, now the fourth.
        pytest.param(_forge_before(3, renumber=False), 4, MOVED, id="forge-into-a-free-id"),
        pytest.param(_forge_before(3, renumber=True), 4, MOVED, id="forge-renumbering"),
        pytest.param(
            _sql(
                "INSERT INTO hitl_audit (id, at, actor, kind, run_id, token_id, data, prev_hash, "
                "hash) SELECT {next}, at, actor, kind, run_id, token_id, data, prev_hash, hash "
                "FROM hitl_audit WHERE id = {e2}"
            ),
            7,
            MOVED,
            id="copy-appended",
        ),
    ],
)
async def test_every_rewrite_on_postgresql_is_named_at_its_first_bad_entry(
    pg_store: str, tamper: Tamper, first_bad: int, reason: str
) -> None:
    """*first_bad*: the position (from 1) in the rewritten trail of the first entry that does
    not match."""
    await _three_decisions(pg_store)
    _rewrite(pg_store, tamper)
    report, entries = await _verified(pg_store)
    assert report.broken is not None
    assert (report.broken.entry_id, report.broken.reason) == (entries[first_bad - 1].id, reason)
    assert report.entries == first_bad - 1


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        pytest.param(CONTENT + CHAIN, MOVED, id="swap"),
        pytest.param(CONTENT, CHANGED, id="swap-content-keeping-hashes"),
    ],
)
async def test_two_entries_swapped_on_sqlite_are_named(
    tmp_path: Path, columns: tuple[str, ...], reason: str
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    await _three_decisions(url)
    _rewrite(url, _swap(4, 5, columns))
    report, _ = await _verified(url)
    assert report.broken is not None
    assert (report.broken.entry_id, report.broken.reason, report.entries) == (4, reason, 3)


async def test_what_the_chain_alone_cannot_see_a_cut_tail_or_a_rewritten_one(
    pg_store: str,
) -> None:
    """The known limit: the chain proves each entry follows the one before it, not that
    nothing came after the last one, nor that whoever holds the owner's rights did not
    recompute every hash from some entry on. Both verify; only a head kept outside the store
    (AuditReport.head, noted by an auditor) shows them."""
    entries = await _three_decisions(pg_store)
    noted, _ = await _verified(pg_store)
    assert (noted.broken, noted.entries, noted.head) == (None, 6, entries[-1].hash)
    _rewrite(pg_store, _sql("DELETE FROM hitl_audit WHERE id > {e4}"))
    cut, _ = await _verified(pg_store)
    assert (cut.broken, cut.entries, cut.head) == (None, 4, entries[3].hash)
    _rewrite(pg_store, _recompute_from(3, '{"approve":true}'))
    rewritten, now = await _verified(pg_store)
    assert (rewritten.broken, rewritten.entries, now[2].data) == (None, 4, '{"approve":true}')
    assert rewritten.head not in (noted.head, cut.head)


def test_the_cli_names_the_entry_changed_on_postgresql(
    pg_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = asyncio.run(_three_decisions(pg_store))
    _rewrite(
        pg_store,
        _sql("UPDATE hitl_audit SET data = replace(data, 'false', 'true') WHERE id = {e3}"),
    )
    code = main(["audit", "verify", "--store", pg_store])
    out, _ = capsys.readouterr()
    bad = entries[2].id
    assert code == 1
    assert out.startswith(
        f"audit trail broken at entry {bad}: {CHANGED} (2 entries before it match)"
    )
    code = main(["audit", "verify", "--store", pg_store, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert (code, doc["intact"], doc["first_bad_entry"], doc["reason"]) == (1, False, bad, CHANGED)


async def test_entries_on_postgresql_are_numbered_1_2_3_as_on_sqlite(pg_store: str) -> None:
    entries = await _three_decisions(pg_store)
    assert [e.id for e in entries] == [1, 2, 3, 4, 5, 6]
