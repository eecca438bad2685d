"""Target profiles: what runs requested under a name may reach on the machine that runs them.

A profile is data the machine's settings hold (``config.py`` reads and saves them); the agent
only receives profiles, through `targets.Targets`, and never reads settings itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..units.defaults import DEFAULT_MAX_ROWS, DEFAULT_MODEL, OFFLINE, ProposerName
from ..units.urls import sqlite_url, target_id

DEFAULT_PROFILE = "default"
"""The profile made of the top-level fields of ``settings.json``."""
DEMO_PROFILE = "demo"
"""The demo's built-in profile: its target is ``<data dir>/demo/target.db`` (see ``--demo``)."""
DEMO_DENY: tuple[str, ...] = ("customers.password_hash",)
"""What the demo profile hides from the agent: the demo's password hashes."""
DEMO_ALLOW: tuple[str, ...] = ("plans", "customers", "subscriptions", "invoices", "refunds")
"""The tables of the demo database (its catalogue's allow list)."""

_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class TargetProfile:
    """What runs requested under *name* may reach, as this machine's settings define it.

    ``target_url`` never holds a password: the password of a profile's database is kept in the
    OS keyring (``secrets.get_db_password(name)``). The API key goes to ``base_url`` only.
    """

    name: str
    target_url: str
    proposer: ProposerName = OFFLINE
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    max_rows: int = DEFAULT_MAX_ROWS

    def to_json(self) -> dict[str, Any]:
        """The profile as ``settings.json`` keeps it under ``profiles`` (without its name)."""
        return {
            "target_url": self.target_url,
            "proposer": self.proposer,
            "model": self.model,
            "base_url": self.base_url,
            "allow": None if self.allow is None else list(self.allow),
            "deny": list(self.deny),
            "max_rows": self.max_rows,
        }

    @property
    def target_id(self) -> str:
        """A short digest of the target database's address (driver, user, host, port, database,
        without the password): a run records it so that it is never executed against another
        database that a profile of the same name points at elsewhere."""
        return target_id(self.target_url)


def profile_name(name: Any) -> str:
    """*name* when it can name a profile (letters, digits, ``_ . -``; 64 at most), else
    `ValueError` saying what is allowed."""
    if not isinstance(name, str) or not _PROFILE_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name a profile: use up to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def demo_profile(target: Path) -> TargetProfile:
    """The built-in ``demo`` profile for the demo database at *target*."""
    return TargetProfile(
        DEMO_PROFILE, sqlite_url(target), OFFLINE, allow=DEMO_ALLOW, deny=DEMO_DENY
    )
