"""Why a store could not be opened, said so that whoever runs a team store can act on it:
the server is unreachable, refused the password or the role, has no such database, or the
role lacks the rights it needs."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..config import process_environment
from ..engine import EngineError, redact_url
from .errors import CliError

_DRIVER_PREFIX = re.compile(r"^\((?:sqlalchemy|asyncpg|psycopg)[^)]*\)\s*")


def store_error(url: str, exc: BaseException, *, migrating: bool = False) -> CliError:
    """The error that ends a command which could not open the store at *url*; *migrating*:
    the command creates the schema (`hitl migrate`), so missing rights mean another role."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, EngineError):  # its message names the store (redacted) and the fix
        return CliError(str(exc))
    shown = redact_url(url)
    server, role, database = _parts(url)
    message = _message(exc)
    code = _sqlstate(exc)
    if code == "28P01":
        given = _password_given(url)
        return CliError(
            f"the server {server} refused the password of role {role} for {shown}: "
            f"{'wrong password' if given else 'it asks for one and none was given'} "
            "(give it in the URL, or in PGPASSWORD or ~/.pgpass)"
        )
    if code is not None and code.startswith("28"):
        return CliError(f"the server {server} refused role {role} for {shown}: {message}")
    if code == "3D000":
        return CliError(
            f"there is no database {database} on the server {server}: create it "
            f"(CREATE DATABASE {database} OWNER {role}), then run `hitl migrate --store {shown}`"
        )
    if code == "42501":
        if migrating:
            return CliError(
                f"role {role} may not create the store's tables in {database} ({message}): "
                "run `hitl migrate` as the database's owner"
            )
        return CliError(
            f"role {role} may not use the store's tables in {database} ({message}): grant it "
            "the team's role as docs/team.md shows"
        )
    if isinstance(exc, OSError) and server is not None:  # refused, no such host, timed out
        return CliError(f"cannot reach the database server {server} of {shown}: {message}")
    return CliError(f"cannot use the store {shown}: {type(exc).__name__}: {message}")


def _parts(url: str) -> tuple[str | None, str, str]:
    """The server (host:port, None for a file), the role and the database of *url*."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None, "?", "?"
    if parsed.get_backend_name() == "sqlite":
        return None, "-", parsed.database or ":memory:"
    server = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return server, parsed.username or "(your login)", parsed.database or "?"


def _password_given(url: str) -> bool:
    try:
        in_url = make_url(url).password is not None
    except ArgumentError:
        in_url = False
    return in_url or bool(process_environment().get("PGPASSWORD"))


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, whichever layer (SQLAlchemy, driver) carries it."""
    orig = getattr(exc, "orig", None)
    for layer in (exc, orig, exc.__cause__, getattr(orig, "__cause__", None)):
        code = getattr(layer, "sqlstate", None) or getattr(layer, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return None


def _message(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = _DRIVER_PREFIX.sub("", lines[0]) if lines else ""
    return first or type(exc).__name__
