"""Database URLs: how the app spells, checks, shows and compares a store's or a target's address.

Pure functions over SQLAlchemy's URL parser. A URL shown to people or written in a message goes
through `redact_url` (or `display_url`), so a password typed into one is never printed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file, absolute so it does not depend on the cwd."""
    return f"sqlite:///{path.expanduser().absolute().as_posix()}"


def as_store_url(text: str) -> str:
    """A store given as a URL is kept; a bare file path becomes a SQLite URL."""
    return text if "://" in text else sqlite_url(Path(text))


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, or SQLite in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def sqlite_database(url: str) -> str | None:
    """What the sqlite3 module opens for a SQLite URL (``:memory:`` when it names no file), or
    None for another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return parsed.database or ":memory:"


def parse_target_url(text: str) -> str:
    """A target database as a SQLAlchemy URL; a bare file path becomes a SQLite URL.

    Raises ``ValueError`` with a short reason when *text* is not a usable database URL.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty")
    url = as_store_url(text)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            f"{text!r} is not a database URL (expected e.g. sqlite:///path/to/file.db or "
            "postgresql://user@host/db)"
        ) from None
    if not parsed.drivername:
        raise ValueError(f"{text!r} names no database driver")
    if parsed.password is not None:
        raise ValueError(
            f"{parsed.render_as_string(hide_password=True)!r} holds a password; passwords are "
            "kept in the OS keyring only (Settings, or 'hitl profile password NAME'), never in "
            "a URL"
        )
    return url


def url_password(url: str) -> str | None:
    """The password written in a database URL, or None."""
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def without_password(url: str) -> str:
    """The URL with its password left out (not masked: gone)."""
    parsed = make_url(url)
    if parsed.password is None:
        return url
    return _no_password(parsed).render_as_string(hide_password=False)


def _no_password(url: URL) -> URL:
    # URL.set(password=None) keeps the password: None means "unchanged" there.
    return URL.create(
        url.drivername, url.username, None, url.host, url.port, url.database, url.query
    )


def target_id(url: str) -> str:
    """A short digest of a database's address (driver, user, host, port, database, without the
    password): the same database gives the same id whatever its password."""
    text = _no_password(make_url(url)).render_as_string(hide_password=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def redact_url(url: str) -> str:
    """The URL for people and messages: its password hidden (text that is no URL, as given)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def display_url(url: str) -> str:
    """A database for people: a SQLite file's path, any other URL without its password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return redact_url(url)


def async_url(url: str) -> str:
    """postgresql:// → postgresql+asyncpg://; already-async URLs are kept."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def sync_url(url: str | URL) -> URL:
    """The target's URL with the sync driver the agent uses: psycopg for PostgreSQL, the
    standard library's sqlite3 for SQLite, whatever driver the URL named."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed
