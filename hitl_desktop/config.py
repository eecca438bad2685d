"""The app's settings: one typed object, read from the environment in this module only.

Environment variables (an empty value counts as unset):

* ``HITL_STORE``: the run store, as a URL (``sqlite:///…``, ``postgresql://…``) or a SQLite
  file path. Default: ``runs.db`` in the data directory.
* ``HITL_DATA_DIR``: where the app keeps its files. Default: the per-user data directory
  (``platformdirs.user_data_dir("hitl-desktop")``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "hitl-desktop"
STORE_FILE = "runs.db"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the app takes from its environment.

    Later issues add their fields here (the target database URL, the model and its base URL,
    the default token timeout), each with the variable it is read from.
    """

    data_dir: Path
    store_url: str


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from *environ* (default: the process environment).

    Creates the data directory when the store lives in it, so the store can be opened there.
    """
    env = os.environ if environ is None else environ
    data_dir_value = env.get("HITL_DATA_DIR") or None
    data_dir = (
        Path(platformdirs.user_data_dir(APP_NAME))
        if data_dir_value is None
        else Path(data_dir_value).expanduser().absolute()
    )
    store_value = env.get("HITL_STORE") or None
    if store_value is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        store_url = sqlite_url(data_dir / STORE_FILE)
    else:
        store_url = as_store_url(store_value)
    return Settings(data_dir=data_dir, store_url=store_url)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file, absolute so it does not depend on the cwd."""
    return f"sqlite:///{path.expanduser().absolute().as_posix()}"


def as_store_url(text: str) -> str:
    """A store given as a URL is kept; a bare file path becomes a SQLite URL."""
    return text if "://" in text else sqlite_url(Path(text))
