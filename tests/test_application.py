"""The application layer: targets and change requests made from this machine's settings."""

import dataclasses
from pathlib import Path

import pytest

from hitl_desktop.agent import RequestInvalid, TargetProfile
from hitl_desktop.application import change_request, local_targets
from hitl_desktop.config import load_settings


def test_change_requests_name_a_profile_and_carry_no_authority(tmp_path: Path):
    settings = dataclasses.replace(
        load_settings({"HITL_DATA_DIR": str(tmp_path)}),
        target_url="sqlite:///shop.db",
        proposer="openai",
        token_timeout="2h",
        deny=("users.password",),
        profiles={"other": {"target_url": "sqlite:///other.db"}},
    )
    change = change_request(settings, "  Refund invoice 7  ")
    assert change.to_json() == {
        "request": "Refund invoice 7",
        "profile": "default",
        "timeout": "2h",
        "target_id": TargetProfile("default", "sqlite:///shop.db").target_id,
    }
    other = change_request(settings, "x", profile="other", timeout="5m")
    assert (other.profile, other.timeout) == ("other", "5m")
    assert other.target_id != change.target_id
    with pytest.raises(RequestInvalid, match="no target profile 'nope'"):
        change_request(settings, "x", profile="nope")

    # Checked as any payload is: the console's requests too, before a run exists.
    with pytest.raises(RequestInvalid, match="4000"):
        change_request(settings, "x" * 4001)
    with pytest.raises(RequestInvalid, match="empty"):
        change_request(settings, "   ")
    with pytest.raises(RequestInvalid, match="no target"):
        change_request(dataclasses.replace(settings, target_url=None), "Refund invoice 7")


def test_one_message_says_how_to_set_a_target(tmp_path: Path):
    settings = load_settings({"HITL_DATA_DIR": str(tmp_path), "HITL_CONFIG_DIR": str(tmp_path)})
    with pytest.raises(RequestInvalid) as refused:
        change_request(settings, "Void invoice 7")
    message = str(refused.value)
    assert "no target profile 'default' (profiles here: none)" in message
    assert "Settings" in message and "hitl profile add" in message and "--demo" in message


def test_local_targets_are_the_settings_profiles(tmp_path: Path):
    settings = dataclasses.replace(
        load_settings({"HITL_DATA_DIR": str(tmp_path)}), target_url="sqlite:///shop.db"
    )
    targets = local_targets(settings)
    assert targets.profiles == settings.target_profiles()
    assert targets.profile("default").target_url == "sqlite:///shop.db"
