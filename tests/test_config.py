"""Settings: defaults, environment overrides, settings.json, one reader of os.environ."""

import asyncio
import dataclasses
import json
import logging
import os
import re
import stat
from datetime import timedelta
from pathlib import Path

import platformdirs
import pytest

import hitl_desktop
from hitl_desktop.agent import TargetProfile
from hitl_desktop.config import (
    PREFERENCES,
    ConfigError,
    Settings,
    SettingsProblem,
    check_settings,
    environment_api_key,
    load_settings,
    save_settings,
    with_preferences,
    with_profile,
    without_profile,
)
from hitl_desktop.engine import Engine
from hitl_desktop.units.urls import parse_target_url


@pytest.fixture(autouse=True)
def user_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point platformdirs' config directory at a temp dir: no test reads the real settings."""
    where = tmp_path / "user config" / "hitl-desktop"

    def fake(appname: str | None = None, *args: object, **kwargs: object) -> str:
        assert appname == "hitl-desktop"
        return str(where)

    monkeypatch.setattr(platformdirs, "user_config_dir", fake)
    return where


@pytest.fixture
def user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point platformdirs at a temp dir so no test touches the real per-user directory."""
    where = tmp_path / "user data" / "hitl-desktop"

    def fake(appname: str | None = None, *args: object, **kwargs: object) -> str:
        assert appname == "hitl-desktop"
        return str(where)

    monkeypatch.setattr(platformdirs, "user_data_dir", fake)
    return where


def test_defaults_put_the_store_in_the_per_user_data_directory(user_data_dir: Path):
    settings = load_settings({})
    assert settings.data_dir == user_data_dir
    assert settings.store_url == f"sqlite:///{user_data_dir / 'runs.db'}"
    assert user_data_dir.is_dir()  # created, so the store can be opened there


def test_the_real_default_data_directory_comes_from_platformdirs(tmp_path: Path):
    # HITL_STORE is set so nothing is created in the real home directory.
    settings = load_settings({"HITL_STORE": f"sqlite:///{tmp_path / 'x.db'}"})
    assert settings.data_dir == Path(platformdirs.user_data_dir("hitl-desktop"))


def test_hitl_data_dir_moves_the_data_directory_and_the_default_store(
    tmp_path: Path, user_data_dir: Path
):
    where = tmp_path / "a" / "b"
    settings = load_settings({"HITL_DATA_DIR": str(where)})
    assert settings.data_dir == where
    assert settings.store_url == f"sqlite:///{where / 'runs.db'}"
    assert where.is_dir()
    assert not user_data_dir.exists()


def test_a_relative_hitl_data_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"HITL_DATA_DIR": "rel"})
    assert settings.data_dir == tmp_path / "rel"
    assert settings.store_url == f"sqlite:///{tmp_path / 'rel' / 'runs.db'}"


def test_hitl_store_overrides_the_store_and_creates_no_directory(
    tmp_path: Path, user_data_dir: Path
):
    url = "postgresql://reviewer@db.internal/hitl"
    settings = load_settings({"HITL_STORE": url, "HITL_DATA_DIR": str(tmp_path / "data")})
    assert settings.store_url == url
    assert settings.data_dir == tmp_path / "data"
    assert not (tmp_path / "data").exists()
    assert not user_data_dir.exists()


def test_hitl_store_may_be_a_plain_sqlite_path(tmp_path: Path):
    settings = load_settings({"HITL_STORE": str(tmp_path / "elsewhere.db")})
    assert settings.store_url == f"sqlite:///{tmp_path / 'elsewhere.db'}"


def test_empty_variables_count_as_unset(user_data_dir: Path):
    settings = load_settings({"HITL_STORE": "", "HITL_DATA_DIR": ""})
    assert settings.data_dir == user_data_dir
    assert settings.store_url == f"sqlite:///{user_data_dir / 'runs.db'}"


def test_load_settings_reads_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.delenv("HITL_STORE", raising=False)
    assert load_settings().data_dir == tmp_path / "from-env"


def test_settings_are_frozen(tmp_path: Path):
    settings = load_settings({"HITL_DATA_DIR": str(tmp_path)})
    assert isinstance(settings, Settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.store_url = "sqlite://"  # type: ignore[misc]


def test_the_default_store_url_opens_in_a_directory_with_spaces(tmp_path: Path):
    where = tmp_path / "my data"
    settings = load_settings({"HITL_DATA_DIR": str(where)})

    async def open_and_count() -> dict[str, int]:
        engine = Engine(settings.store_url)
        await engine.open()
        try:
            return await engine.count_runs()
        finally:
            await engine.stop()

    assert asyncio.run(open_and_count()) == {}
    assert (where / "runs.db").is_file()


def test_config_is_the_only_module_that_reads_the_environment():
    package = Path(hitl_desktop.__file__).parent
    reads = re.compile(r"\bos\.(environ|getenv|getenvb)\b|\bfrom os import\b.*\b(environ|getenv)\b")
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.parent != package / "config"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if reads.search(line)
    ]
    assert offenders == []


# ------------------------------------------------------------------ settings.json


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment with the store, data and config directories under tmp_path."""
    return {
        "HITL_DATA_DIR": str(tmp_path / "data"),
        "HITL_CONFIG_DIR": str(tmp_path / "config"),
    }


def write_file(env: dict[str, str], document: object) -> Path:
    path = Path(env["HITL_CONFIG_DIR"]) / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_preferences_default_when_there_is_no_settings_file(env: dict[str, str]):
    settings = load_settings(env)
    assert settings.target_url is None
    assert settings.proposer == "offline"
    assert settings.model == "gpt-4o"
    assert settings.base_url is None
    assert settings.token_timeout == "24h"
    assert settings.token_timeout_delta == timedelta(hours=24)
    assert settings.notifications is True
    assert settings.close_to_tray is True
    assert settings.overridden == frozenset()
    assert settings.settings_file == Path(env["HITL_CONFIG_DIR"]) / "settings.json"
    assert not Path(env["HITL_CONFIG_DIR"]).exists()  # reading creates nothing


def test_the_default_config_directory_comes_from_platformdirs(
    tmp_path: Path, user_config_dir: Path
):
    settings = load_settings({"HITL_DATA_DIR": str(tmp_path)})
    assert settings.settings_file == user_config_dir / "settings.json"


def test_existing_constructions_still_work(tmp_path: Path, user_config_dir: Path):
    settings = Settings(data_dir=tmp_path, store_url="sqlite://")
    assert settings.proposer == "offline"
    assert settings.settings_file == user_config_dir / "settings.json"


def test_saved_preferences_are_remembered_between_launches(env: dict[str, str], tmp_path: Path):
    first = load_settings(env)
    changed = dataclasses.replace(
        first,
        target_url=f"sqlite:///{tmp_path / 'shop.db'}",
        proposer="openai",
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:11434/v1",
        token_timeout="2d",
        notifications=False,
        close_to_tray=False,
    )
    path = save_settings(changed)
    assert path == Path(env["HITL_CONFIG_DIR"]) / "settings.json"
    again = load_settings(env)
    assert again == changed
    document = json.loads(path.read_text(encoding="utf-8"))
    assert set(document) == {"version", *PREFERENCES}
    assert document["version"] == 1
    # Only the file itself is left behind: the temporary file was renamed over it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]


def test_settings_never_hold_a_secret(env: dict[str, str]):
    names = [field.name for field in dataclasses.fields(Settings)]
    assert not [name for name in names if re.search("key|secret|password", name)]
    path = save_settings(load_settings({**env, "OPENAI_API_KEY": "sk-never-in-the-file-1234"}))
    assert "sk-never" not in path.read_text(encoding="utf-8")
    assert "sk-never" not in repr(load_settings({**env, "OPENAI_API_KEY": "sk-never-x"}))


def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    path = save_settings(load_settings(env))
    before = path.read_text(encoding="utf-8")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_settings(dataclasses.replace(load_settings(env), model="other"))
    assert path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]


def test_hitl_target_overrides_the_file_for_this_launch_only(env: dict[str, str], tmp_path: Path):
    write_file(env, {"target_url": "sqlite:///from-the-file.db"})
    settings = load_settings({**env, "HITL_TARGET": str(tmp_path / "env.db")})
    assert settings.target_url == f"sqlite:///{tmp_path / 'env.db'}"  # a path becomes a URL
    assert settings.overridden == {"target_url"}
    path = save_settings(dataclasses.replace(settings, model="gpt-4.1"))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["target_url"] == "sqlite:///from-the-file.db"
    assert document["model"] == "gpt-4.1"
    assert load_settings(env).target_url == "sqlite:///from-the-file.db"


def test_an_overridden_target_without_a_file_saves_the_default(env: dict[str, str]):
    settings = load_settings({**env, "HITL_TARGET": "postgresql://u@h/shop"})
    assert settings.target_url == "postgresql://u@h/shop"
    path = save_settings(settings)
    assert json.loads(path.read_text(encoding="utf-8"))["target_url"] is None


def test_an_unusable_hitl_target_is_named(env: dict[str, str]):
    with pytest.raises(ConfigError, match="HITL_TARGET"):
        load_settings({**env, "HITL_TARGET": "not a url://x"})


def test_a_corrupt_settings_file_names_the_file(env: dict[str, str]):
    path = write_file(env, {})
    path.write_text('{"model": "gpt-4o",', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as caught:
        load_settings(env)
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_settings_file_that_is_not_utf8_names_the_file(env: dict[str, str]):
    path = write_file(env, {})
    path.write_bytes(b'{"model": "gpt-\xff"}')
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_settings(env)
    assert str(path) in str(caught.value)


def test_a_settings_file_must_hold_an_object(env: dict[str, str]):
    path = write_file(env, ["gpt-4o"])
    with pytest.raises(ConfigError, match="JSON object") as caught:
        load_settings(env)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "value", "reason"),
    [
        ("model", 4, "must be a string"),
        ("model", "  ", "must not be empty"),
        ("target_url", 1, "string or null"),
        ("notifications", "yes", "true or false"),
        ("close_to_tray", 0, "true or false"),
        ("proposer", "anthropic", "offline, openai"),
        ("token_timeout", "forever", "not a duration"),
        ("token_timeout", 86400, "must be a string"),
        ("target_url", "not a url://x", "not a database URL"),
    ],
)
def test_a_wrong_value_names_the_file_and_the_entry(
    env: dict[str, str], entry: str, value: object, reason: str
):
    path = write_file(env, {entry: value})
    with pytest.raises(ConfigError, match=reason) as caught:
        load_settings(env)
    assert str(path) in str(caught.value)
    assert repr(entry) in str(caught.value)


def test_unknown_entries_are_ignored_with_a_warning_and_dropped_on_save(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
):
    path = write_file(env, {"version": 2, "model": "gpt-4.1", "theme": "dark"})
    with caplog.at_level(logging.WARNING, logger="hitl_desktop.config"):
        settings = load_settings(env)
    assert settings.model == "gpt-4.1"
    assert "'theme'" in caplog.text and str(path) in caplog.text
    save_settings(settings)
    assert "theme" not in json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("entry", ["api_key", "openai_api_key", "OPENAI_API_KEY", "password"])
def test_a_secret_in_the_settings_file_is_refused(env: dict[str, str], entry: str):
    path = write_file(env, {entry: "sk-do-not-keep-me-here"})
    with pytest.raises(ConfigError, match="holds a secret") as caught:
        load_settings(env)
    message = str(caught.value)
    assert str(path) in message and repr(entry) in message
    assert "sk-do-not-keep-me-here" not in message
    assert "keyring" in message and "OPENAI_API_KEY" in message


def test_a_bare_path_as_target_in_the_file_becomes_a_sqlite_url(env: dict[str, str], tmp_path):
    write_file(env, {"target_url": str(tmp_path / "shop.db")})
    assert load_settings(env).target_url == f"sqlite:///{tmp_path / 'shop.db'}"


def test_a_target_url_never_holds_a_password(env: dict[str, str]):
    with pytest.raises(ValueError, match=r"holds a password.*keyring") as refused:
        parse_target_url("postgresql://app:hunter2@db/shop")
    assert "hunter2" not in str(refused.value)
    write_file(env, {"target_url": "postgresql://app:hunter2@db/shop"})
    with pytest.raises(ConfigError, match=r"target_url.*password") as refused:
        load_settings(env)
    assert "hunter2" not in str(refused.value)
    write_file(env, {"profiles": {"shop": {"target_url": "postgresql://a:hunter2@db/shop"}}})
    with pytest.raises(ConfigError, match=r"password.*in profile 'shop'"):
        load_settings(env)
    write_file(env, {})
    with pytest.raises(ConfigError, match=r"HITL_TARGET.*password"):
        load_settings({**env, "HITL_TARGET": "postgresql://app:hunter2@db/shop"})


def test_profiles_are_saved_read_and_removed(env: dict[str, str]):
    settings = load_settings(env)
    assert settings.target_profiles() == {}
    shop = TargetProfile("shop", "postgresql://app@db/shop", "openai", "m", "http://127.0.0.1:9")
    save_settings(with_profile(settings, shop))
    again = load_settings(env)
    assert again.target_profiles() == {"shop": shop}
    save_settings(with_profile(again, TargetProfile("default", "sqlite:///x.db", deny=("a.b",))))
    again = load_settings(env)
    assert again.target_url == "sqlite:///x.db" and set(again.target_profiles()) == {
        "default",
        "shop",
    }
    save_settings(without_profile(again, "shop"))
    assert set(load_settings(env).target_profiles()) == {"default"}
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        without_profile(again, "nope")


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [
        ([], "'profiles' must be an object"),
        ({"a b": {"target_url": "sqlite:///x.db"}}, "cannot name a profile"),
        ({"shop": {}}, "no target_url"),
        ({"shop": {"target_url": "sqlite:///x.db", "colour": 1}}, "unknown entries"),
        ({"shop": {"target_url": "sqlite:///x.db", "max_rows": 0}}, "max_rows"),
        ({"default": {"target_url": "sqlite:///x.db"}}, "top-level"),
    ],
)
def test_bad_profiles_name_the_problem(env: dict[str, str], profiles: object, expected: str):
    write_file(env, {"profiles": profiles})
    with pytest.raises(ConfigError, match=expected):
        load_settings(env)


def test_folders_and_settings_are_private_from_the_start(env: dict[str, str], tmp_path: Path):
    old = os.umask(0o022)
    try:
        settings = load_settings(env)
        path = save_settings(settings)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    # An existing folder of ours that others can read is tightened.
    settings.data_dir.chmod(0o755)
    load_settings(env)
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700


def test_the_environment_api_key_is_stripped_and_blank_means_unset(
    monkeypatch: pytest.MonkeyPatch,
):
    assert environment_api_key({"OPENAI_API_KEY": " sk-abc\n"}) == "sk-abc"
    assert environment_api_key({"OPENAI_API_KEY": "  "}) is None
    assert environment_api_key({}) is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-process")
    assert environment_api_key() == "sk-process"


def test_allow_and_deny_lists_are_remembered(env: dict[str, str]):
    settings = load_settings(env)
    assert settings.allow is None and settings.deny == ()
    save_settings(dataclasses.replace(settings, allow=("refunds", "invoices.status"), deny=()))
    again = load_settings(env)
    assert again.allow == ("refunds", "invoices.status") and again.deny == ()


@pytest.mark.parametrize("bad", [["a b"], ["a.b.c"], "refunds", [1]])
def test_bad_allow_lists_name_the_entry(env: dict[str, str], bad: object):
    write_file(env, {"allow": bad})
    with pytest.raises(ConfigError, match="'allow' must be a list"):
        load_settings(env)


def test_every_bad_setting_is_a_problem_naming_its_field(env: dict[str, str]):
    document = {"model": "  ", "token_timeout": "forever", "max_rows": 0, "notifications": True}
    path = write_file(env, document)
    problems = check_settings(json.loads(path.read_text(encoding="utf-8")))
    assert [problem.field for problem in problems] == ["max_rows", "model", "token_timeout"]
    assert problems[0].reason == "must be a positive whole number"
    assert problems[1].reason == "must not be empty"
    assert "'forever' is not a duration" in problems[2].reason
    # Loading still stops at the first, naming the file and the entry.
    with pytest.raises(ConfigError, match="'max_rows' must be a positive whole number") as caught:
        load_settings(env)
    assert str(path) in str(caught.value)
    assert check_settings({"model": "gpt-4.1", "token_timeout": "10m", "max_rows": 3}) == []


def test_a_value_of_the_wrong_type_is_one_problem_not_two():
    assert check_settings({"model": 4, "token_timeout": 86400, "target_url": 1}) == [
        SettingsProblem("model", "must be a string"),
        SettingsProblem("token_timeout", "must be a string"),
        SettingsProblem("target_url", "must be a string or null"),
    ]


def test_problems_inside_a_profile_name_the_profile():
    profiles = {
        "shop": {"target_url": "sqlite:///x.db", "max_rows": 0, "model": ""},
        "crm": {"model": "m"},
    }
    problems = check_settings({"profiles": profiles, "model": ""})
    assert [(problem.field, problem.profile) for problem in problems] == [
        ("max_rows", "shop"),
        ("model", "shop"),
        ("profiles", None),
        ("model", None),
    ]
    assert str(problems[0]) == "'max_rows' must be a positive whole number (in profile 'shop')"
    assert str(problems[2]) == "'profiles' holds the profile 'crm', which has no target_url"


@pytest.mark.parametrize("base_url", ["localhost:11434", "ftp://models.example/v1", ""])
def test_a_base_url_must_be_an_http_url(env: dict[str, str], base_url: str):
    write_file(env, {"base_url": base_url})
    with pytest.raises(ConfigError, match=r"'base_url' must be an http:// or https:// URL"):
        load_settings(env)
    write_file(env, {"base_url": "https://models.example/v1"})
    assert load_settings(env).base_url == "https://models.example/v1"


# ------------------------------------------------------------------ team store (issue 14)

TEAM = "postgresql://ana@db.example:5432/hitl"


def test_a_team_store_is_remembered_and_opened_instead_of_the_own_one(env: dict[str, str]):
    first = load_settings(env)
    assert first.store_url == first.own_store_url and first.team_store_url is None
    assert not first.review_only and first.display_name == ""
    changes = {"store_url": TEAM, "review_only": True, "display_name": "Ana Lima"}
    assert check_settings(changes) == []
    path = save_settings(with_preferences(first, changes))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert {name: document[name] for name in changes} == changes
    again = load_settings(env)
    assert again.store_url == again.team_store_url == TEAM
    assert again.review_only and again.display_name == "Ana Lima"
    # Back to this machine's own store: the file says "", the store is the SQLite file again.
    back = with_preferences(again, {"store_url": ""})
    assert back.store_url == first.own_store_url
    save_settings(back)
    assert json.loads(path.read_text(encoding="utf-8"))["store_url"] == ""
    assert load_settings(env).store_url == first.own_store_url
    # No team store keeps a SQLite store in use (a --store or HITL_STORE file) as it is.
    elsewhere = dataclasses.replace(first, store_url="sqlite:///elsewhere.db")
    assert with_preferences(elsewhere, {"store_url": ""}).store_url == "sqlite:///elsewhere.db"


def test_hitl_store_overrides_the_team_store_for_this_launch_only(
    env: dict[str, str], tmp_path: Path
):
    write_file(env, {"store_url": TEAM})
    settings = load_settings({**env, "HITL_STORE": str(tmp_path / "mine.db")})
    assert settings.store_url == f"sqlite:///{tmp_path / 'mine.db'}"
    assert "store_url" in settings.overridden
    path = save_settings(dataclasses.replace(settings, display_name="Ana"))
    assert json.loads(path.read_text(encoding="utf-8"))["store_url"] == TEAM
    assert load_settings(env).store_url == TEAM


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("postgresql://ana:s3cret@db.example:5432/hitl", "holds a password"),
        ("sqlite:///runs.db", "must be a PostgreSQL URL"),
        ("mysql://ana@db.example/hitl", "must be a PostgreSQL URL"),
        ("postgresql://ana@db.example:5432/", "names no database"),
        ("postgresql:///hitl", "names no server host"),
        ("not a url", "is not a database URL"),
        (None, "must be a string"),
    ],
)
def test_an_unusable_team_store_is_named(env: dict[str, str], value: object, reason: str):
    problems = check_settings({"store_url": value})
    assert [problem.field for problem in problems] == ["store_url"]
    assert reason in problems[0].reason
    assert "s3cret" not in problems[0].reason
    path = write_file(env, {"store_url": value})
    with pytest.raises(ConfigError, match=f"'store_url' .*{reason}") as caught:
        load_settings(env)
    assert str(path) in str(caught.value) and "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "value", "reason"),
    [
        ("review_only", "yes", "must be true or false"),
        ("display_name", 7, "must be a string"),
        ("display_name", "Ana\nLima", "must be one line of printable characters"),
        ("display_name", "x" * 65, "must be at most 64 characters"),
    ],
)
def test_review_only_and_the_display_name_are_checked(entry: str, value: object, reason: str):
    assert check_settings({entry: value}) == [SettingsProblem(entry, reason)]
