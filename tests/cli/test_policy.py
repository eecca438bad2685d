"""`hitl policy apply | show | clear` through the CLI's entry point, on real stores."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from hitl_desktop.cli import main
from hitl_desktop.engine import AuditEntry, Engine, PolicyRecord
from tests import pg

POLICY = """\
[[rule]]
name = "small refunds"
table = "refunds"
when = ["refunds.amount <= 50"]
auto_approve = true

[[rule]]
name = "large refunds"
table = "refunds"
approvals = 2
approvers = ["finance", "leads"]
"""
APPLIED = re.compile(
    r"policy version (\d+) applied by (\S+) at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC: (.*); "
    r"sha256 ([0-9a-f]{12})\n"
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HITL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HITL_STORE", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "runs.db")


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def on_store(store: str) -> tuple[PolicyRecord | None, list[AuditEntry], str]:
    """The policy in force, the PolicyApplied entries, and who the store says we are."""
    url = store if "://" in store else f"sqlite:///{store}"

    async def read() -> tuple[PolicyRecord | None, list[AuditEntry], str]:
        async with Engine(url) as engine:
            policy = await engine.current_policy()
            entries = await engine.audit_entries()
            return policy, [e for e in entries if e.kind == "PolicyApplied"], engine.actor

    return asyncio.run(read())


def test_apply_stores_the_file_and_audits_it(
    capsys: pytest.CaptureFixture[str], store: str, policy_file: Path
) -> None:
    code, out, err = run(capsys, "policy", "apply", str(policy_file), "--store", store)
    assert (code, err) == (0, ""), err
    found = APPLIED.fullmatch(out)
    assert found is not None, out
    record, entries, actor = on_store(store)
    assert record is not None and record.text == POLICY
    assert found.groups() == (
        "1",
        actor,
        record.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "2 rules (small refunds, large refunds)",
        record.sha256[:12],
    )
    assert [json.loads(e.data or "null")["version"] for e in entries] == [1]
    assert entries[0].actor == actor


def test_apply_as_json_gives_the_records_fields(
    capsys: pytest.CaptureFixture[str], store: str, policy_file: Path
) -> None:
    code, out, _ = run(capsys, "policy", "apply", str(policy_file), "--store", store, "--json")
    doc = json.loads(out)
    record, _, _ = on_store(store)
    assert code == 0 and record is not None
    assert doc == {
        "version": 1,
        "text": POLICY,
        "sha256": record.sha256,
        "applied_at": record.applied_at.isoformat(),
        "applied_by": record.applied_by,
        "rules": ["small refunds", "large refunds"],
    }


def test_show_prints_the_policy_in_force_which_applies_again(
    capsys: pytest.CaptureFixture[str], store: str, policy_file: Path, tmp_path: Path
) -> None:
    run(capsys, "policy", "apply", str(policy_file), "--store", store)
    code, out, _ = run(capsys, "policy", "show", "--store", store)
    record, _, _ = on_store(store)
    assert code == 0 and record is not None
    header, body = out.split("\n", 1)
    assert re.fullmatch(
        rf"# policy version 1, applied by {re.escape(record.applied_by)} at "
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC, sha256 {record.sha256[:12]}",
        header,
    )
    assert body == POLICY
    shown = tmp_path / "shown.toml"
    shown.write_text(out, encoding="utf-8")  # the header is a TOML comment
    code, out, _ = run(capsys, "policy", "apply", str(shown), "--store", store)
    assert code == 0 and out.startswith("policy version 2 applied by ")
    code, out, _ = run(capsys, "policy", "show", "--store", store, "--json")
    doc = json.loads(out)["policy"]
    assert (code, doc["version"], doc["text"]) == (0, 2, shown.read_text(encoding="utf-8"))


def test_show_without_a_policy(
    capsys: pytest.CaptureFixture[str], store: str, policy_file: Path
) -> None:
    on_store(store)  # an empty store
    assert run(capsys, "policy", "show", "--store", store) == (
        0,
        "no policy: one approval by anyone decides\n",
        "",
    )
    code, out, _ = run(capsys, "policy", "show", "--store", store, "--json")
    assert (code, json.loads(out)) == (0, {"policy": None})


def test_clear_applies_the_empty_policy(
    capsys: pytest.CaptureFixture[str], store: str, policy_file: Path
) -> None:
    run(capsys, "policy", "apply", str(policy_file), "--store", store)
    code, out, _ = run(capsys, "policy", "clear", "--store", store)
    found = APPLIED.fullmatch(out)
    assert code == 0 and found is not None, out
    assert (found[1], found[4]) == ("2", "no rules (one approval by anyone decides)")
    record, entries, _ = on_store(store)
    assert record is None
    assert [json.loads(e.data or "null")["empty"] for e in entries] == [False, True]
    code, out, _ = run(capsys, "policy", "show", "--store", store)
    assert (code, out) == (0, "no policy: one approval by anyone decides\n")


def test_an_invalid_policy_names_its_problem_and_stores_nothing(
    capsys: pytest.CaptureFixture[str], store: str, tmp_path: Path
) -> None:
    on_store(store)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "a"\napprovals = 0\n', encoding="utf-8")
    code, out, err = run(capsys, "policy", "apply", str(bad), "--store", store)
    assert (code, out) == (2, "")
    assert err == (
        f"hitl: error: {bad}: rule 'a', field 'approvals': must be 1 or more, not 0; "
        "nothing was applied\n"
    )
    bad.write_text('[[rule]]\nname = "a"\nwhen = [\n', encoding="utf-8")
    code, _, err = run(capsys, "policy", "apply", str(bad), "--store", store)
    assert code == 2 and "is not valid TOML" in err and "line 3" in err
    record, entries, _ = on_store(store)
    assert (record, entries) == (None, [])


def test_a_file_that_cannot_be_read(
    capsys: pytest.CaptureFixture[str], store: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.toml"
    code, out, err = run(capsys, "policy", "apply", str(missing), "--store", store)
    assert (code, out) == (2, "")
    assert err == f"hitl: error: cannot read the policy file {missing}: No such file or directory\n"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[rule]]")
    code, _, err = run(capsys, "policy", "apply", str(binary), "--store", store)
    assert code == 2 and f"cannot read the policy file {binary}: not UTF-8 text" in err
    assert not Path(store).exists()  # nothing was opened, let alone created


def test_show_needs_an_existing_store(capsys: pytest.CaptureFixture[str], store: str) -> None:
    code, _, err = run(capsys, "policy", "show", "--store", store)
    assert code == 1 and "no store at" in err


@pytest.fixture
def pg_store() -> Iterator[str]:
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_policy")
    try:
        yield url
    finally:
        pg.drop_database(name)


def test_on_a_team_store(
    capsys: pytest.CaptureFixture[str], pg_store: str, policy_file: Path
) -> None:
    assert run(capsys, "migrate", "--store", pg_store)[0] == 0
    code, out, err = run(capsys, "policy", "apply", str(policy_file), "--store", pg_store)
    found = APPLIED.fullmatch(out)
    assert code == 0 and found is not None, err
    record, entries, actor = on_store(pg_store)
    assert record is not None and record.text == POLICY
    assert found[2] == record.applied_by == actor  # the server's role, not a claimed name
    assert [e.actor for e in entries] == [actor]
    code, out, _ = run(capsys, "policy", "show", "--store", pg_store)
    assert code == 0 and out.startswith("# policy version 1, applied by ")
    code, _, _ = run(capsys, "policy", "clear", "--store", pg_store)
    assert code == 0 and on_store(pg_store)[0] is None
