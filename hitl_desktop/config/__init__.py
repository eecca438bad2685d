"""The app's settings: one typed object, read from the environment and `settings.json` here only.

Environment variables (an empty value counts as unset):

* ``HITL_STORE``: the run store, as a URL (``sqlite:///…``, ``postgresql://…``) or a SQLite
  file path, for this launch (``store_url`` in ``settings.json`` is left as it is). Default: the
  team store of ``settings.json`` when one is set, else ``runs.db`` in the data directory.
* ``HITL_DATA_DIR``: where the app keeps its files. Default: the per-user data directory
  (``platformdirs.user_data_dir("hitl-desktop")``).
* ``HITL_CONFIG_DIR``: where ``settings.json`` lives. Default: the per-user config directory
  (``platformdirs.user_config_dir("hitl-desktop")``).
* ``HITL_TARGET``: the target database (URL or SQLite file path, never with a password); overrides
  ``target_url`` of the ``default`` profile for this launch without being saved into it.
* ``OPENAI_API_KEY``: read only by :func:`environment_api_key`, for ``secrets.py``. It is never
  part of :class:`Settings`, so it cannot leak through a repr or into ``settings.json``.

``settings.json`` holds the preferences remembered between launches (:data:`PREFERENCES`). The
fields from ``target_url`` to ``max_rows`` form the ``default`` *target profile*; more profiles can
be named under ``profiles``. A run names its profile and carries only its request: what it may
reach (the database, the model server, the allow and deny lists, the row limit) is read from the
profile on the machine that executes it (:meth:`Settings.target_profiles`). It never holds a
secret, nor a database URL with a password in it: :func:`save_settings` writes only the
preference fields, and a file that contains a secret-looking entry (``api_key``, ``password``,
…) is refused with an error. Unknown entries are ignored with a warning rather than refused, so
a file written by a newer version still opens in an older one; the next save drops them. A file
that is not valid JSON, or holds a value of the wrong type, raises :class:`ConfigError` naming
the file and the entry.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import platformdirs

from ..agent import (
    DEFAULT_PROFILE,
    DEMO_PROFILE,
    TargetProfile,
    demo_profile,
    profile_name,
)
from ..units.defaults import DEFAULT_MAX_ROWS as DEFAULT_MAX_ROWS
from ..units.defaults import DEFAULT_MODEL as DEFAULT_MODEL
from ..units.defaults import DEFAULT_TOKEN_TIMEOUT as DEFAULT_TOKEN_TIMEOUT
from ..units.defaults import OFFLINE, ProposerName
from ..units.defaults import PROPOSERS as PROPOSERS
from ..units.durations import parse_duration
from ..units.urls import as_store_url as as_store_url
from ..units.urls import parse_target_url as parse_target_url
from ..units.urls import sqlite_database, url_password
from ..units.urls import sqlite_path as sqlite_path
from ..units.urls import sqlite_url as sqlite_url
from .checks import (
    MAX_DISPLAY_NAME as MAX_DISPLAY_NAME,
)
from .checks import (
    PROFILE_FIELDS as PROFILE_FIELDS,
)
from .checks import (
    ConfigError as ConfigError,
)
from .checks import (
    SettingsProblem as SettingsProblem,
)
from .checks import (
    _check_preferences,
)
from .checks import (
    check_settings as check_settings,
)

APP_NAME = "hitl-desktop"
STORE_FILE = "runs.db"
DEMO_DIR = "demo"
"""The demo's folder in the data directory: its store (`STORE_FILE`) and `DEMO_TARGET`."""
DEMO_TARGET = "target.db"
SETTINGS_FILE = "settings.json"
SETTINGS_VERSION = 1
API_KEY_ENV = "OPENAI_API_KEY"
LINK_SECRET_ENV = "HITL_LINK_SECRET"


# The fields of Settings that settings.json remembers, in the order they are written.
PREFERENCES = (
    "target_url",
    "proposer",
    "model",
    "base_url",
    "token_timeout",
    "notifications",
    "close_to_tray",
    "allow",
    "deny",
    "max_rows",
    "profiles",
    "profile",
    "store_url",
    "review_only",
    "display_name",
)


# Entry names that look like a secret: refused in settings.json (secrets live in the keyring).
_SECRET_NAME = re.compile(r"api[_-]?key|secret|password|passwd|credential", re.IGNORECASE)

log = logging.getLogger(__name__)


def check_profile_name(name: str) -> str:
    """*name* when it can name a profile, else `ConfigError` saying what is allowed."""
    try:
        return profile_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the app takes from its environment and its settings file.

    ``data_dir`` comes from the environment only; the fields from ``target_url`` on are the
    preferences kept in ``settings.json``. ``store_url`` is the store this launch opens: the
    file remembers it only when it is a team store (PostgreSQL), as ``""`` otherwise (this
    machine's own SQLite store, :attr:`own_store_url`).
    ``config_dir`` is where that file lives (``None``: the default place), and ``overridden``
    names the preferences an environment variable set for this launch, which
    :func:`save_settings` leaves as they are in the file.
    """

    data_dir: Path
    store_url: str
    target_url: str | None = None
    proposer: ProposerName = OFFLINE
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    token_timeout: str = DEFAULT_TOKEN_TIMEOUT
    notifications: bool = True
    close_to_tray: bool = True
    allow: tuple[str, ...] | None = None
    """The target's tables (``table``) or columns (``table.column``) the agent may see and
    change; None: every table."""
    deny: tuple[str, ...] = ()
    """Tables or columns hidden from the agent whatever ``allow`` says."""
    max_rows: int = DEFAULT_MAX_ROWS
    """The most rows one proposal of the default profile may change."""
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The named profiles besides ``default``, as settings.json holds them (checked)."""
    profile: str = DEFAULT_PROFILE
    """The profile the console's new requests use (``demo`` with ``--demo``)."""
    review_only: bool = False
    """Whether the console executes nothing (workers do); it still triggers and decides."""
    display_name: str = ""
    """The name shown beside the reviewer's database role or OS account; empty: the account."""
    config_dir: Path | None = None
    overridden: frozenset[str] = field(default_factory=frozenset)

    @property
    def settings_file(self) -> Path:
        """The ``settings.json`` these settings were read from and are saved to."""
        return (self.config_dir or default_config_dir()) / SETTINGS_FILE

    @property
    def own_store_url(self) -> str:
        """This machine's own SQLite store, used when no team store is set."""
        return sqlite_url(self.data_dir / STORE_FILE)

    @property
    def team_store_url(self) -> str | None:
        """The store when it is shared (PostgreSQL), without a password; None: a SQLite file."""
        return None if sqlite_database(self.store_url) is not None else self.store_url

    @property
    def token_timeout_delta(self) -> timedelta:
        """The default token timeout as a ``timedelta`` (validated when the settings were made)."""
        return parse_duration(self.token_timeout)

    def target_profiles(self) -> dict[str, TargetProfile]:
        """Every profile this machine defines: ``default`` (when a target is set), the named
        ones, and ``demo`` once the demo database exists in the data directory."""
        found: dict[str, TargetProfile] = {}
        if self.target_url:
            fields = {name: getattr(self, name) for name in PROFILE_FIELDS}
            found[DEFAULT_PROFILE] = TargetProfile(DEFAULT_PROFILE, **fields)
        for name, entry in self.profiles.items():
            found[name] = _profile(name, entry)
        demo = self.demo_dir / DEMO_TARGET
        if DEMO_PROFILE not in found and demo.is_file():
            found[DEMO_PROFILE] = demo_profile(demo)
        return found

    @property
    def demo_dir(self) -> Path:
        """Where ``--demo`` keeps its store and its target database."""
        return self.data_dir / DEMO_DIR

    def active_profile(self) -> TargetProfile | None:
        """The profile new requests use, or None when it is not defined (no target set)."""
        return self.target_profiles().get(self.profile)


def with_profile(settings: Settings, profile: TargetProfile) -> Settings:
    """*settings* with *profile* defined (``default``: the top-level fields), ready to save."""
    if url_password(profile.target_url) is not None:
        raise ConfigError(f"profile {profile.name!r}: its target URL must not hold a password")
    if profile.name == DEFAULT_PROFILE:
        return replace(settings, **{name: getattr(profile, name) for name in PROFILE_FIELDS})
    check_profile_name(profile.name)
    return replace(settings, profiles={**settings.profiles, profile.name: profile.to_json()})


def with_preferences(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """*settings* with the preferences in *changes*, as ``settings.json`` spells them (checked
    by :func:`check_settings` first): ``store_url`` ``""`` means no team store, so a SQLite
    store in use stays, and a team store gives way to this machine's own."""
    values = dict(changes)
    if "store_url" in values and not values["store_url"]:
        values["store_url"] = (
            settings.own_store_url if settings.team_store_url else settings.store_url
        )
    return replace(settings, **values)


def without_profile(settings: Settings, name: str) -> Settings:
    """*settings* without the profile *name* (``default``: its target is unset)."""
    if name == DEFAULT_PROFILE:
        return replace(settings, target_url=None)
    if name not in settings.profiles:
        raise ConfigError(f"there is no profile {name!r} in {settings.settings_file}")
    return replace(settings, profiles={k: v for k, v in settings.profiles.items() if k != name})


def _profile(name: str, entry: Mapping[str, Any]) -> TargetProfile:
    values = {key: entry[key] for key in PROFILE_FIELDS if key in entry}
    values["target_url"] = as_store_url(values["target_url"])
    for key in ("allow", "deny"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return TargetProfile(name=name, **values)


def process_environment() -> Mapping[str, str]:
    """The process environment, for the few callers that need more than `Settings` (the display
    check before Qt loads): every read of the environment starts in this module."""
    return os.environ


def default_environment(name: str, value: str) -> None:
    """Set *name* in the process environment unless it is set (the self-test's Qt platform)."""
    os.environ.setdefault(name, value)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from *environ* (default: the process environment) and ``settings.json``.

    Creates the data directory when the store lives in it, so the store can be opened there.
    Raises :class:`ConfigError` when ``settings.json`` or ``HITL_TARGET`` cannot be used.
    """
    env = os.environ if environ is None else environ
    data_dir_value = env.get("HITL_DATA_DIR") or None
    data_dir = (
        Path(platformdirs.user_data_dir(APP_NAME))
        if data_dir_value is None
        else Path(data_dir_value).expanduser().absolute()
    )
    config_value = env.get("HITL_CONFIG_DIR") or None
    config_dir = (
        default_config_dir() if config_value is None else Path(config_value).expanduser().absolute()
    )
    preferences = read_preferences(config_dir / SETTINGS_FILE)
    overridden: set[str] = set()
    team_store = preferences.pop("store_url", "")
    store_value = env.get("HITL_STORE") or None
    if store_value is not None:
        store_url = as_store_url(store_value)
        overridden.add("store_url")
    elif team_store:
        store_url = team_store
    else:
        private_dir(data_dir)
        store_url = sqlite_url(data_dir / STORE_FILE)
    target_value = env.get("HITL_TARGET") or None
    if target_value is not None:
        try:
            preferences["target_url"] = parse_target_url(target_value)
        except ValueError as exc:
            raise ConfigError(f"HITL_TARGET: {exc}") from None
        overridden.add("target_url")
    for name in ("allow", "deny"):
        if isinstance(preferences.get(name), list):
            preferences[name] = tuple(preferences[name])
    return Settings(
        data_dir=data_dir,
        store_url=store_url,
        config_dir=config_dir,
        overridden=frozenset(overridden),
        **preferences,
    )


def save_settings(settings: Settings) -> Path:
    """Write the preferences of *settings* to its ``settings.json``, atomically; return the path.

    The file is written to a temporary file in the same directory and renamed over the old one,
    so a crash leaves the old file or the new one, never half of one. Preferences named in
    ``settings.overridden`` keep the value the file had (the environment's value is for this
    launch only). Nothing but :data:`PREFERENCES` is written: never a secret.
    """
    path = settings.settings_file
    values = {name: getattr(settings, name) for name in PREFERENCES}
    values["store_url"] = settings.team_store_url or ""
    if settings.overridden:
        kept = read_preferences(path) if path.exists() else {}
        for name in settings.overridden:
            values[name] = kept.get(name, _DEFAULTS[name])
    _check_preferences(values, path)
    document: dict[str, Any] = {"version": SETTINGS_VERSION, **values}
    assert not any(_SECRET_NAME.search(name) for name in document), "a secret in settings.json"
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    private_dir(path.parent)
    # mkstemp creates the file 0600: the settings are never readable by others, not even briefly.
    fd, temp_name = tempfile.mkstemp(prefix=f".{SETTINGS_FILE}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def read_preferences(path: Path) -> dict[str, Any]:
    """The preferences stored in *path*, validated; ``{}`` when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"the settings file {path} is not valid JSON ({exc}); fix it, or delete it to start "
            "from the defaults"
        ) from None
    if not isinstance(document, dict):
        raise ConfigError(f"the settings file {path} must hold a JSON object")
    values: dict[str, Any] = {}
    for name, value in document.items():
        if _SECRET_NAME.search(name):
            raise ConfigError(
                f"the settings file {path} holds a secret ({name!r}); secrets are never read "
                f"from it: remove that entry and save the key in the settings dialog (OS "
                f"keyring) or set {API_KEY_ENV}"
            )
        if name == "version":
            continue
        if name not in PREFERENCES:
            log.warning("ignoring unknown entry %r in the settings file %s", name, path)
            continue
        values[name] = value
    _check_preferences(values, path)
    if values.get("target_url") is not None:
        values["target_url"] = parse_target_url(values["target_url"])
    return values


def private_dir(path: Path) -> Path:
    """Create *path* (and its parents) when missing, and make it 0700: the app's folders hold
    the store and the settings, which no other user may read. An existing folder of ours that
    is more open is tightened; a folder owned by someone else is left as it is."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            try:
                path.chmod(0o700)
            except OSError as exc:
                log.warning("could not make %s private (0700): %s", path, exc)
    return path


def environment_api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """``OPENAI_API_KEY`` without surrounding whitespace, or ``None`` when unset or blank.

    Only ``hitl_desktop.secrets`` calls this; everything else asks ``secrets.get_api_key()``.
    """
    env = os.environ if environ is None else environ
    return env.get(API_KEY_ENV, "").strip() or None


def default_config_dir() -> Path:
    """The per-user config directory (``HITL_CONFIG_DIR`` is applied by :func:`load_settings`)."""
    return Path(platformdirs.user_config_dir(APP_NAME))


_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(Settings) if f.name in PREFERENCES and f.name != "profiles"
}
_DEFAULTS["profiles"] = {}
_DEFAULTS["store_url"] = ""


def environment_link_secret(environ: Mapping[str, str] | None = None) -> str | None:
    """``HITL_LINK_SECRET`` without surrounding whitespace, or ``None`` when unset or blank.

    Only ``hitl_desktop.links`` calls this, to sign and check links."""
    env = os.environ if environ is None else environ
    return env.get(LINK_SECRET_ENV, "").strip() or None
