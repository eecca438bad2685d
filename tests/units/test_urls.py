"""Database URLs: spelling a store or target, checking a target, showing one without a password."""

from pathlib import Path

import pytest

from hitl_desktop.units.urls import (
    as_store_url,
    async_url,
    display_url,
    parse_target_url,
    redact_url,
    sqlite_database,
    sqlite_path,
    sqlite_url,
    sync_url,
    target_id,
    url_password,
    without_password,
)


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sqlite:///shop.db", "sqlite:///shop.db"),
        ("postgresql+psycopg://u@h:5432/shop", "postgresql+psycopg://u@h:5432/shop"),
        ("/srv/shop.db", "sqlite:////srv/shop.db"),
    ],
)
def test_target_urls(text: str, expected: str):
    assert parse_target_url(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "not a url://x", "://nothing"])
def test_unusable_target_urls(text: str):
    with pytest.raises(ValueError):
        parse_target_url(text)


def test_a_sqlite_url_is_absolute(tmp_path: Path):
    assert sqlite_url(tmp_path / "a b.db") == f"sqlite:///{(tmp_path / 'a b.db').as_posix()}"


@pytest.mark.parametrize(
    ("url", "file", "database"),
    [
        ("sqlite:////srv/runs.db", Path("/srv/runs.db"), "/srv/runs.db"),
        ("sqlite://", None, ":memory:"),
        ("sqlite:///:memory:", None, ":memory:"),
        ("postgresql://u@h/db", None, None),
    ],
)
def test_the_file_of_a_sqlite_url(url: str, file: Path | None, database: str | None):
    assert sqlite_path(url) == file
    assert sqlite_database(url) == database


def test_passwords_are_hidden_or_left_out():
    url = "postgresql://app:hunter2@db:5432/shop"
    assert url_password(url) == "hunter2"
    assert url_password("not a url") is None
    assert "hunter2" not in redact_url(url) and "***" in redact_url(url)
    assert redact_url("not a url") == "not a url"
    assert without_password(url) == "postgresql://app@db:5432/shop"
    assert without_password("sqlite:///shop.db") == "sqlite:///shop.db"
    assert display_url(url) == redact_url(url)
    assert display_url("sqlite:////srv/shop.db") == "/srv/shop.db"


def test_a_target_id_names_the_database_not_its_password():
    assert target_id("postgresql://app:a@db/shop") == target_id("postgresql://app:b@db/shop")
    assert target_id("postgresql://app@db/shop") != target_id("postgresql://app@db/other")
    assert len(target_id("sqlite:///shop.db")) == 16


def test_drivers_for_the_engine_and_the_agent():
    assert async_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert async_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert sync_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+psycopg"
    assert sync_url("sqlite+aiosqlite:///x.db").drivername == "sqlite"
    assert sync_url("mysql+pymysql://u@h/db").drivername == "mysql+pymysql"
