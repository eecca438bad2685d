"""A run is intent, the machine is authority: what a db-change run reaches comes from this
machine's target profiles, never from its payload (planted runs, unknown profiles, passwords)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from hitl_desktop import secrets
from hitl_desktop.agent import ChangeRequest, TargetProfile, Targets, request_change
from hitl_desktop.agent.review import TASK_NAME, review_from_steps
from hitl_desktop.engine import Engine, RunStatus
from tests.keyrings import MemoryKeyring

from .helpers import REFUND
from .openai_server import OpenAIServer, answer

KEY = "sk-live-0c4f-PLANTED-RUNS-MUST-NOT-GET-ME"


@pytest.fixture
def key_in_keyring(memory_keyring: MemoryKeyring) -> MemoryKeyring:
    secrets.set_api_key(KEY)
    return memory_keyring


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "planted",
    [
        {"base_url": "<server>"},
        {"base_url": "<server>", "proposer": "openai", "model": "gpt-4o"},
        {"deny": []},
        {"allow": ["customers"], "deny": []},
        {"target": "<target>"},
        {"max_rows": 100_000},
    ],
)
async def test_a_planted_run_that_overrides_its_profile_is_not_executed(
    engine: Engine,
    targets: Targets,
    demo_path: Path,
    key_in_keyring: MemoryKeyring,
    planted: dict[str, object],
) -> None:
    """Anyone who can write the store can queue a run; its payload cannot choose where the key
    goes, which database is read, or what the deny list hides."""
    targets.add(TargetProfile("shop", f"sqlite:///{demo_path}", deny=("customers.password_hash",)))
    before = digest(demo_path)
    with OpenAIServer() as server:
        server.script(answer(REFUND))
        fill = {"<server>": server.base_url, "<target>": f"sqlite:///{demo_path}"}
        payload = {
            "request": "Refund $20 on invoice 1042",
            "profile": "shop",
            **{k: fill.get(v, v) if isinstance(v, str) else v for k, v in planted.items()},
        }
        run = await engine.trigger(TASK_NAME, payload)
        run = await engine.wait_for(run.id, [RunStatus.FAILED, RunStatus.WAITING])
        assert run.status == RunStatus.FAILED
        assert run.error is not None and "target profile" in run.error
        for name in planted:
            assert repr(name) in run.error
        assert server.requests == []  # no key sent anywhere
    assert await engine.list_tokens() == []
    assert digest(demo_path) == before


async def test_a_run_naming_a_profile_this_machine_lacks_fails_before_reading(
    engine: Engine, targets: Targets, demo_path: Path, key_in_keyring: MemoryKeyring
) -> None:
    targets.add(TargetProfile("shop", f"sqlite:///{demo_path}"))
    before = digest(demo_path)
    run = await request_change(engine, ChangeRequest("Refund $20 on invoice 1042", "payroll"))
    run = await engine.wait_for(run.id, [RunStatus.FAILED, RunStatus.WAITING])
    assert run.status == RunStatus.FAILED and run.error is not None
    assert "no target profile 'payroll'" in run.error and "shop" in run.error
    assert await engine.get_steps(run.id) == [] or all(
        not step.name.startswith("read") for step in await engine.get_steps(run.id)
    )
    assert digest(demo_path) == before


async def test_a_profile_pointing_elsewhere_here_refuses_the_run(
    engine: Engine, targets: Targets, demo_path: Path, tmp_path: Path
) -> None:
    """The same profile name on another machine (or after an edit) may name another database:
    the run was requested for the one its target_id names, and is executed nowhere else."""
    requested_for = TargetProfile("shop", f"sqlite:///{tmp_path / 'other.db'}")
    targets.add(TargetProfile("shop", f"sqlite:///{demo_path}"))
    change = ChangeRequest("Void invoice 4854", "shop", target_id=requested_for.target_id)
    run = await engine.wait_for((await request_change(engine, change)).id)
    assert run.status == RunStatus.FAILED and run.error is not None
    assert "points at another database" in run.error


async def test_the_model_server_is_the_profiles_own(
    engine: Engine, targets: Targets, demo_path: Path, key_in_keyring: MemoryKeyring
) -> None:
    with OpenAIServer() as profiles_server, OpenAIServer() as other:
        profiles_server.script(answer(REFUND))
        profile = targets.add(
            TargetProfile(
                "shop",
                f"sqlite:///{demo_path}",
                "openai",
                "test-model",
                profiles_server.base_url,
            )
        )
        change = ChangeRequest("Refund $20 on invoice 1042", "shop", target_id=profile.target_id)
        run = await engine.wait_for((await request_change(engine, change)).id)
        assert run.status == RunStatus.WAITING, run.error
        assert [r.authorization for r in profiles_server.requests] == [f"Bearer {KEY}"]
        assert other.requests == []
    assert run.payload == change.to_json()
    assert set(run.payload) == {"request", "profile", "timeout", "target_id"}


def test_the_password_comes_from_the_keyring_and_stays_out_of_runs(tmp_path: Path) -> None:
    profile = TargetProfile("shop", "postgresql://app@db.internal:5432/shop")
    targets = Targets({"shop": profile}, db_password=lambda name: f"pw-of-{name}")
    url = targets.url(profile)
    assert url.password == "pw-of-shop" and url.drivername == "postgresql+psycopg"
    change = ChangeRequest("Void invoice 4854", "shop", target_id=profile.target_id)
    assert "pw-of" not in repr(change.to_json()) and "pw-of" not in repr(profile)
    # target_id names the database, not the password: a new password keeps the id.
    with_password = sa.make_url(profile.target_url).set(password="x")
    assert TargetProfile("s", with_password.render_as_string(False)).target_id == (
        profile.target_id
    )


async def test_the_review_names_the_target_without_a_password(
    engine: Engine, targets: Targets, demo_path: Path
) -> None:
    profile = targets.add(TargetProfile("shop", f"sqlite:///{demo_path}"))
    change = ChangeRequest("Void invoice 4854", "shop", target_id=profile.target_id)
    run = await engine.wait_for((await request_change(engine, change)).id)
    review = review_from_steps(await engine.get_steps(run.id))
    assert review is not None and review.target == f"sqlite:///{demo_path}"
