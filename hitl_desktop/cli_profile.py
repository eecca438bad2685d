"""`hitl profile`: the target profiles of this machine, which say what db-change runs may reach.

    hitl profile list
    hitl profile add NAME --target URL [--proposer offline|openai] [--model M] [--base-url URL]
                          [--allow T[,T.c]...] [--deny T[,T.c]...] [--max-rows N]
                          [--password-stdin] [--no-check]
    hitl profile password NAME [--delete]
    hitl profile remove NAME

A profile is saved in ``settings.json`` (``default`` is its top-level target; others under
``profiles``); its database password goes to the OS keyring only, read from standard input, never
from the command line (where other users could see it in the process list).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from typing import Any

from . import secrets
from .config import (
    DEFAULT_MAX_ROWS,
    DEFAULT_MODEL,
    PROPOSERS,
    ConfigError,
    Settings,
    TargetProfile,
    check_profile_name,
    load_settings,
    parse_target_url,
    save_settings,
    sqlite_path,
    with_profile,
    without_profile,
)
from .engine import redact_url

USAGE = 2


def add_profile_commands(sub: Any) -> None:
    """Add `profile` and its subcommands to the `hitl` parser's *sub* (its subparsers)."""
    profile = sub.add_parser("profile", help="list, add or remove target profiles")
    inner = profile.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = inner.add_parser("list", help="the profiles of this machine")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    listing.set_defaults(run=_list, render=_render)

    add = inner.add_parser("add", help="add or replace a profile (checked against its database)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--target", required=True, metavar="URL", help="database URL or SQLite path")
    add.add_argument("--proposer", choices=PROPOSERS, default="offline")
    add.add_argument("--model", default=DEFAULT_MODEL)
    add.add_argument(
        "--base-url",
        metavar="URL",
        help="the OpenAI-compatible server (the key goes there and nowhere else)",
    )
    add.add_argument(
        "--allow",
        action="append",
        metavar="ENTRIES",
        help="tables or table.columns the agent may see (comma-separated; "
        "repeatable; default: every table)",
    )
    add.add_argument(
        "--deny",
        action="append",
        metavar="ENTRIES",
        help="tables or table.columns hidden from the agent (comma-separated)",
    )
    add.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, metavar="N")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the database password from standard input into the keyring",
    )
    add.add_argument(
        "--no-check", action="store_true", help="save without connecting to the database first"
    )
    add.add_argument("--json", action="store_true", help="print one JSON document")
    add.set_defaults(run=_add, render=_render)

    password = inner.add_parser("password", help="set a profile's database password (keyring)")
    password.add_argument("name", metavar="NAME")
    password.add_argument("--delete", action="store_true", help="forget the stored password")
    password.add_argument("--json", action="store_true", help="print one JSON document")
    password.set_defaults(run=_password, render=_render)

    remove = inner.add_parser("remove", help="remove a profile and its stored password")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--json", action="store_true", help="print one JSON document")
    remove.set_defaults(run=_remove, render=_render)


def _fail(message: str, code: int = 1) -> Exception:
    from .cli import CliError

    return CliError(message, code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _entries(values: list[str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _describe(profile: TargetProfile) -> dict[str, Any]:
    try:
        stored = secrets.get_db_password(profile.name) is not None
        password = "in the keyring" if stored else "none"
    except secrets.SecretsUnavailable as exc:
        password = f"unknown ({exc})"
    entry = profile.to_json()
    target = redact_url(entry.pop("target_url"))
    return {"name": profile.name, "target": target, **entry, "password": password}


def _list(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings()
    profiles = settings.target_profiles()
    return {
        "active": settings.profile,
        "profiles": [_describe(p) for _, p in sorted(profiles.items())],
    }


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("database password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _add(args: argparse.Namespace) -> dict[str, Any]:
    try:
        name = check_profile_name(args.name)
    except ConfigError as exc:
        raise _fail(str(exc), USAGE) from None
    try:
        target = parse_target_url(args.target)
    except ValueError as exc:
        raise _fail(f"--target: {exc}; pass it with --password-stdin", USAGE) from None
    if (path := sqlite_path(target)) is not None and not path.is_file():
        raise _fail(
            f"no database at {path} (create the demo with 'hitl demo-db PATH'); the profile "
            "was not saved",
            USAGE,
        )
    if args.max_rows < 1:
        raise _fail("--max-rows must be a positive whole number", USAGE)
    profile = TargetProfile(
        name,
        target,
        args.proposer,
        args.model,
        args.base_url,
        _entries(args.allow),
        _entries(args.deny) or (),
        args.max_rows,
    )
    settings = _settings()
    try:
        updated = with_profile(settings, profile)
    except ConfigError as exc:
        raise _fail(str(exc), USAGE) from None
    password = _read_password() if args.password_stdin else None
    if not args.no_check:
        _check(profile, password)
    if password:
        try:
            secrets.set_db_password(name, password)
        except (secrets.SecretsUnavailable, secrets.InvalidApiKey) as exc:
            raise _fail(f"the password was not saved, nor the profile: {exc}") from None
    try:
        path = save_settings(updated)
    except (ConfigError, OSError) as exc:
        raise _fail(f"cannot save the settings: {exc}") from None
    return {"saved": str(path), "profile": _describe(profile)}


def _check(profile: TargetProfile, password: str | None) -> None:
    """Connect and reflect the catalogue, so that a typo or a deny entry matching nothing is
    found now, not when the first run fails."""
    from .agent.targets import Targets

    stored = password if password is not None else _stored_password(profile.name)
    targets = Targets({profile.name: profile}, db_password=lambda _name: stored)
    try:
        targets.check(profile)
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise _fail(
            f"profile {profile.name!r} was not saved: {redact_url(profile.target_url)}: "
            f"{message} (pass --no-check to save it anyway)"
        ) from None
    finally:
        targets.close()


def _stored_password(name: str) -> str | None:
    try:
        return secrets.get_db_password(name)
    except secrets.SecretsUnavailable:
        return None


def _password(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings()
    if args.name not in settings.target_profiles():
        raise _fail(f"there is no profile {args.name!r}", USAGE)
    try:
        if args.delete:
            secrets.delete_db_password(args.name)
            return {"profile": args.name, "password": "deleted"}
        password = _read_password()
        secrets.set_db_password(args.name, password)
    except (secrets.SecretsUnavailable, secrets.InvalidApiKey) as exc:
        raise _fail(str(exc)) from None
    return {"profile": args.name, "password": "saved in the keyring"}


def _remove(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings()
    try:
        path = save_settings(without_profile(settings, args.name))
    except (ConfigError, OSError) as exc:
        raise _fail(str(exc)) from None
    # Where no keyring is usable, no password can have been stored.
    with contextlib.suppress(secrets.SecretsUnavailable):
        secrets.delete_db_password(args.name)
    return {"removed": args.name, "saved": str(path)}


def _render(doc: dict[str, Any], args: argparse.Namespace) -> Any:
    from .cli import Output

    if "profiles" in doc:
        lines = []
        for item in doc["profiles"]:
            mark = "*" if item["name"] == doc["active"] else " "
            lines.append(
                f"{mark} {item['name']}: {item['target']} ({item['proposer']}"
                + (f", {item['model']}" if item["proposer"] == "openai" else "")
                + f"; deny {', '.join(item['deny']) or 'none'}; password {item['password']})"
            )
        return Output(doc, "\n".join(lines) or "no profiles: add one with 'hitl profile add'")
    if "removed" in doc:
        return Output(doc, f"removed profile {doc['removed']} ({doc['saved']})")
    if "saved" in doc:
        item = doc["profile"]
        return Output(doc, f"saved profile {item['name']}: {item['target']} ({doc['saved']})")
    return Output(doc, f"profile {doc['profile']}: password {doc['password']}")
