"""Checks of what a command is given, made before the store is opened: the store's URL, JSON
arguments, and text that cannot be stored."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .. import secrets
from ..config import ConfigError, as_store_url, load_settings
from ..units.urls import sqlite_database
from .errors import USAGE, CliError


def store_url(given: str | None, *, create: bool = False) -> str:
    """The store to open; a SQLite file must exist already unless *create* (reads never create
    a store)."""
    if given is not None and not given.strip():
        raise CliError("--store is empty", USAGE)
    try:
        url = load_settings().store_url if given is None else as_store_url(given)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot prepare the data directory: {exc}") from None
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CliError(f"--store {given!r} is not a database URL: {exc}", USAGE) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database not in ("", ":memory:") and not Path(database).is_file() and not create:
            raise CliError(
                f"no store at {database}: nothing has run there yet "
                "(pass --store URL or set HITL_STORE)"
            )
    return url


def parse_data(data: str, option: str = "--data") -> Any:
    """The JSON value of *option*: given inline, '-' for stdin, or @FILE."""
    if data == "-":
        text, source = sys.stdin.read(), "stdin"
    elif data.startswith("@"):
        try:
            text, source = Path(data[1:]).read_text(encoding="utf-8"), data[1:]
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --data file: {exc}", USAGE) from None
    else:
        text, source = data, option
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}", USAGE) from None
    check_unicode(value, source)
    return value


def check_unicode(value: Any, where: str | None = None) -> None:
    """Refuse text that cannot be stored (a lone surrogate from a JSON escape such as
    ``"\\ud800"``, or bytes of the command line that are not UTF-8), naming where it is."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise CliError(
                f"{where or 'an argument'} holds text that is not valid Unicode ({bad})", USAGE
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            name = where or f"--{str(key).replace('_', '-')}"
            check_unicode(key, name)
            check_unicode(item, name)
    elif isinstance(value, list | tuple):
        for item in value:
            check_unicode(item, where)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def connect_url(url: str) -> str:
    """*url* with the password this machine's keyring keeps for that store put in, to connect
    (never print or save the result); as given when there is none or no keyring."""
    try:
        return secrets.with_store_password(url)
    except secrets.SecretsUnavailable:
        return url


def is_team_store(url: str) -> bool:
    """A store on a server (PostgreSQL): created and upgraded only by `hitl migrate`."""
    return sqlite_database(url) is None
