"""Checking settings: every problem with a settings.json document or the values a settings
dialog is about to save, each naming its field, in one place."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..agent import DEFAULT_PROFILE, profile_name
from ..units.defaults import PROPOSERS
from ..units.durations import parse_duration
from ..units.urls import parse_target_url

MAX_DISPLAY_NAME = 64

# The fields of one target profile, as settings.json spells them.
PROFILE_FIELDS = ("target_url", "proposer", "model", "base_url", "allow", "deny", "max_rows")

_ENTRY = re.compile(r"[^.\s]+(\.[^.\s]+)?")


class ConfigError(ValueError):
    """A settings file or variable that cannot be used; the message names the file/variable."""


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One unusable setting: *field* is its key as ``settings.json`` spells it, *reason* says
    what is wrong in words that follow the field's name (``"must not be empty"``)."""

    field: str
    reason: str
    profile: str | None = None
    """The named profile the value is in; None: a top-level entry."""

    def __str__(self) -> str:
        where = "" if self.profile is None else f" (in profile {self.profile!r})"
        return f"{self.field!r} {self.reason}{where}"


def check_settings(values: Mapping[str, Any]) -> list[SettingsProblem]:
    """Every problem with the preferences in *values* (keys of :data:`PREFERENCES`; those absent
    are not checked): at most one per top-level field, and those of each named profile; ``[]``
    when all can be used. The settings dialog shows them beside its fields; loading and saving
    raise :class:`ConfigError` from the first.

    Types come first: a field's meaning (a duration, a URL) is checked only once its type is
    right, so a wrong type is never also reported as a wrong meaning.
    """
    problems = [problem for name, value in values.items() for problem in _check_type(name, value)]
    mistyped = {problem.field for problem in problems if problem.profile is None}
    for name, meaning in _MEANINGS.items():
        if name in values and name not in mistyped and values[name] is not None:
            reason = meaning(values[name])
            if reason is not None:
                problems.append(SettingsProblem(name, reason))
    return problems


def _check_type(name: str, value: Any) -> list[SettingsProblem]:
    """The problem with *value*'s type or form, which *name*'s meaning check relies on."""
    if name == "profiles":
        return _check_profiles(value)
    reason: str | None = None
    if name == "profile":
        try:
            profile_name(value)
        except ValueError as exc:
            reason = str(exc)
    elif name == "max_rows":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            reason = "must be a positive whole number"
    elif name in ("target_url", "base_url"):
        if value is not None and not isinstance(value, str):
            reason = "must be a string or null"
    elif name in ("notifications", "close_to_tray", "review_only"):
        if not isinstance(value, bool):
            reason = "must be true or false"
    elif name in ("allow", "deny"):
        if not (value is None and name == "allow") and (
            not isinstance(value, list | tuple)
            or not all(isinstance(v, str) and _ENTRY.fullmatch(v) for v in value)
        ):
            reason = "must be a list of 'table' or 'table.column' names"
    elif not isinstance(value, str):
        reason = "must be a string"
    return [] if reason is None else [SettingsProblem(name, reason)]


def _check_proposer(value: str) -> str | None:
    return None if value in PROPOSERS else f"must be one of {', '.join(PROPOSERS)}"


def _check_model(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _check_base_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return (
        "must be an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1 (none: OpenAI's "
        "own server)"
    )


def _check_token_timeout(value: str) -> str | None:
    try:
        parse_duration(value)
    except ValueError as exc:
        return f"is invalid: {exc}"
    return None


def _check_target_url(value: str) -> str | None:
    try:
        parse_target_url(value)
    except ValueError as exc:
        return f"is invalid: {exc}"
    return None


def _check_store_url(value: str) -> str | None:
    if not value:
        return None  # this machine's own store
    example = "e.g. postgresql://ana@db.example:5432/hitl (empty: this machine's own store)"
    try:
        url = make_url(value)
    except ArgumentError:
        return f"is not a database URL: {value!r} ({example})"
    if url.get_backend_name() != "postgresql":
        return f"must be a PostgreSQL URL, {example}"
    if url.password is not None:
        return (
            "holds a password; a store's password is kept in the OS keyring only (Settings), "
            "never in a URL or a file"
        )
    if not url.host:
        return f"names no server host, {example}"
    if not url.database:
        return f"names no database, {example}"
    return None


def _check_display_name(value: str) -> str | None:
    if len(value) > MAX_DISPLAY_NAME:
        return f"must be at most {MAX_DISPLAY_NAME} characters"
    if value and not value.isprintable():
        return "must be one line of printable characters"
    return None


# What each field's value must mean, checked once its type is right (in this order).
_MEANINGS: dict[str, Callable[[str], str | None]] = {
    "proposer": _check_proposer,
    "model": _check_model,
    "base_url": _check_base_url,
    "token_timeout": _check_token_timeout,
    "target_url": _check_target_url,
    "store_url": _check_store_url,
    "display_name": _check_display_name,
}


def _check_profiles(value: Any) -> list[SettingsProblem]:
    """The problems of a ``profiles`` entry: it must be an object of named profiles, each an
    object of `PROFILE_FIELDS` with a target."""
    if not isinstance(value, Mapping):
        return [SettingsProblem("profiles", "must be an object of profiles")]
    problems: list[SettingsProblem] = []
    for name, entry in value.items():
        try:
            profile_name(name)
        except ValueError as exc:
            problems.append(SettingsProblem("profiles", f"holds a bad name: {exc}"))
            continue
        where = f"holds the profile {name!r}, which"
        if name == DEFAULT_PROFILE:
            reason = f"{where} is made of the top-level entries; name the extra profile otherwise"
        elif not isinstance(entry, Mapping):
            reason = f"{where} must be an object"
        elif unknown := sorted(set(entry) - set(PROFILE_FIELDS)):
            reason = (
                f"{where} has unknown entries {unknown} (a profile has {', '.join(PROFILE_FIELDS)})"
            )
        elif not entry.get("target_url"):
            reason = f"{where} has no target_url"
        else:
            problems += [replace(problem, profile=name) for problem in check_settings(entry)]
            continue
        problems.append(SettingsProblem("profiles", reason))
    return problems


def _check_preferences(values: Mapping[str, Any], path: Path) -> None:
    """Raise :class:`ConfigError` naming *path* and the entry for the first unusable value."""
    problems = check_settings(values)
    if problems:
        raise ConfigError(f"the settings file {path}: {problems[0]}")
