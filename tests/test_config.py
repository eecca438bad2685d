"""Settings: defaults, environment overrides, and the one-reader-of-os.environ rule."""

import asyncio
import dataclasses
import re
from pathlib import Path

import platformdirs
import pytest

import hitl_desktop
from hitl_desktop.config import Settings, as_store_url, load_settings
from hitl_desktop.engine import Engine


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


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///runs.db", "sqlite:///runs.db"),
        ("sqlite+aiosqlite:////abs/runs.db", "sqlite+aiosqlite:////abs/runs.db"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
    ],
)
def test_urls_are_kept_as_given(given: str, expected: str):
    assert as_store_url(given) == expected


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
        if path.name != "config.py" or path.parent != package
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if reads.search(line)
    ]
    assert offenders == []
