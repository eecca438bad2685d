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
from dataclasses import dataclass
from typing import Any

from .. import secrets
from ..agent import TargetProfile, Targets
from ..config import (
    ConfigError,
    Settings,
    check_profile_name,
    load_settings,
    parse_target_url,
    save_settings,
    sqlite_path,
    with_profile,
    without_profile,
)
from ..engine import redact_url
from .command import Command
from .errors import USAGE, CliError, Output

Doc = dict[str, Any]


@dataclass(frozen=True)
class ProfileList(Command[Doc]):
    """`hitl profile list`: the profiles of this machine, the active one marked."""

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> ProfileList:
        return cls()

    def execute(self) -> Doc:
        settings = _settings()
        profiles = settings.target_profiles()
        return {
            "active": settings.profile,
            "profiles": [_describe(p) for _, p in sorted(profiles.items())],
        }

    def render(self, result: Doc) -> Output:
        lines = []
        for item in result["profiles"]:
            mark = "*" if item["name"] == result["active"] else " "
            lines.append(
                f"{mark} {item['name']}: {item['target']} ({item['proposer']}"
                + (f", {item['model']}" if item["proposer"] == "openai" else "")
                + f"; deny {', '.join(item['deny']) or 'none'}; password {item['password']})"
            )
        return Output(result, "\n".join(lines) or "no profiles: add one with 'hitl profile add'")


@dataclass(frozen=True)
class ProfileAdd(Command[Doc]):
    """`hitl profile add`: add or replace a profile, checked against its database."""

    profile: TargetProfile
    password_stdin: bool
    check: bool

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> ProfileAdd:
        try:
            name = check_profile_name(args.name)
        except ConfigError as exc:
            raise CliError(str(exc), USAGE) from None
        try:
            target = parse_target_url(args.target)
        except ValueError as exc:
            raise CliError(f"--target: {exc}; pass it with --password-stdin", USAGE) from None
        if (path := sqlite_path(target)) is not None and not path.is_file():
            raise CliError(
                f"no database at {path} (create the demo with 'hitl demo-db PATH'); the profile "
                "was not saved",
                USAGE,
            )
        if args.max_rows < 1:
            raise CliError("--max-rows must be a positive whole number", USAGE)
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
        return cls(profile, args.password_stdin, not args.no_check)

    def execute(self) -> Doc:
        profile = self.profile
        try:
            updated = with_profile(_settings(), profile)
        except ConfigError as exc:
            raise CliError(str(exc), USAGE) from None
        password = _read_password() if self.password_stdin else None
        if self.check:
            _check(profile, password)
        if password:
            try:
                secrets.set_db_password(profile.name, password)
            except (secrets.SecretsUnavailable, secrets.InvalidApiKey) as exc:
                raise CliError(f"the password was not saved, nor the profile: {exc}") from None
        try:
            path = save_settings(updated)
        except (ConfigError, OSError) as exc:
            raise CliError(f"cannot save the settings: {exc}") from None
        return {"saved": str(path), "profile": _describe(profile)}

    def render(self, result: Doc) -> Output:
        item = result["profile"]
        return Output(result, f"saved profile {item['name']}: {item['target']} ({result['saved']})")


@dataclass(frozen=True)
class ProfilePassword(Command[Doc]):
    """`hitl profile password`: set (from stdin) or forget a profile's database password."""

    name: str
    delete: bool

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> ProfilePassword:
        return cls(args.name, args.delete)

    def execute(self) -> Doc:
        if self.name not in _settings().target_profiles():
            raise CliError(f"there is no profile {self.name!r}", USAGE)
        try:
            if self.delete:
                secrets.delete_db_password(self.name)
                return {"profile": self.name, "password": "deleted"}
            password = _read_password()
            secrets.set_db_password(self.name, password)
        except (secrets.SecretsUnavailable, secrets.InvalidApiKey) as exc:
            raise CliError(str(exc)) from None
        return {"profile": self.name, "password": "saved in the keyring"}

    def render(self, result: Doc) -> Output:
        return Output(result, f"profile {result['profile']}: password {result['password']}")


@dataclass(frozen=True)
class ProfileRemove(Command[Doc]):
    """`hitl profile remove`: remove a profile and its stored password."""

    name: str

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> ProfileRemove:
        return cls(args.name)

    def execute(self) -> Doc:
        settings = _settings()
        try:
            path = save_settings(without_profile(settings, self.name))
        except (ConfigError, OSError) as exc:
            raise CliError(str(exc)) from None
        # Where no keyring is usable, no password can have been stored.
        with contextlib.suppress(secrets.SecretsUnavailable):
            secrets.delete_db_password(self.name)
        return {"removed": self.name, "saved": str(path)}

    def render(self, result: Doc) -> Output:
        return Output(result, f"removed profile {result['removed']} ({result['saved']})")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _entries(values: list[str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _describe(profile: TargetProfile) -> Doc:
    try:
        stored = secrets.get_db_password(profile.name) is not None
        password = "in the keyring" if stored else "none"
    except secrets.SecretsUnavailable as exc:
        password = f"unknown ({exc})"
    entry = profile.to_json()
    target = redact_url(entry.pop("target_url"))
    return {"name": profile.name, "target": target, **entry, "password": password}


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("database password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _check(profile: TargetProfile, password: str | None) -> None:
    """Connect and reflect the catalogue, so that a typo or a deny entry matching nothing is
    found now, not when the first run fails."""
    stored = password if password is not None else _stored_password(profile.name)
    targets = Targets({profile.name: profile}, db_password=lambda _name: stored)
    try:
        targets.check(profile)
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise CliError(
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
