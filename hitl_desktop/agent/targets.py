"""What a run may reach: the target profiles of the machine that executes it, never the run's own.

A `db-change` run's payload names a profile and holds the request. Everything that grants access
— the target database and its password, the model server that receives the API key, the allow
and deny lists, the row limit — comes from `Targets`, which the process builds from its own
settings and keyring. A run planted in a shared store can therefore only ask for a change to a
database this machine already lets its reviewers change, under this machine's rules.

`Targets` also keeps each profile's target database open (reflected once) until `close`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from ..units.urls import sync_url
from .apply import writer_engine
from .catalogue import Catalogue, reflect_catalogue
from .errors import AgentError
from .profiles import TargetProfile
from .reader import reader_engine

SecretLookup = Callable[[str], "str | None"]


class ProfileUnavailable(AgentError):
    """A run names a profile this machine does not define, or one that points elsewhere."""


@dataclass(frozen=True)
class Target:
    """An open target database: a reader, a writer that locks, and its catalogue."""

    reader: sa.Engine
    writer: sa.Engine
    catalogue: Catalogue

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()


def connect_target(url: sa.URL, allow: tuple[str, ...] | None, deny: tuple[str, ...]) -> Target:
    """Open *url* (with its password) and reflect its catalogue under *allow* and *deny*."""
    # Proposing only reads (it works under a SELECT-only account); the marker table is created by
    # the first approved apply, inside its transaction.
    reader = reader_engine(url)
    writer = writer_engine(url)
    try:
        catalogue = reflect_catalogue(reader, allow=allow, deny=deny)
    except Exception:
        reader.dispose()
        writer.dispose()
        raise
    return Target(reader, writer, catalogue)


def _no_secret(_name: str) -> str | None:
    return None


class Targets:
    """This machine's target profiles and the secrets that go with them.

    *api_key* returns the model server's key (called only when a profile's proposer needs it);
    *db_password* returns a profile's database password by profile name. The composition root
    passes the keyring's functions; tests pass their own.
    """

    def __init__(
        self,
        profiles: Mapping[str, TargetProfile] | None = None,
        *,
        api_key: Callable[[], str | None] = lambda: None,
        db_password: SecretLookup = _no_secret,
    ) -> None:
        self._profiles: dict[str, TargetProfile] = dict(profiles or {})
        self._api_key = api_key
        self._db_password = db_password
        self._open: dict[TargetProfile, Target] = {}
        self._lock = threading.Lock()

    @property
    def profiles(self) -> Mapping[str, TargetProfile]:
        return dict(self._profiles)

    def set_profiles(self, profiles: Mapping[str, TargetProfile]) -> None:
        """Replace the profiles (the settings were saved); targets opened for a profile that
        changed or went away are closed."""
        with self._lock:
            self._profiles = dict(profiles)
            kept = set(self._profiles.values())
            for profile in [p for p in self._open if p not in kept]:
                self._open.pop(profile).dispose()

    def add(self, profile: TargetProfile) -> TargetProfile:
        """Define (or redefine) one profile; returns it."""
        with self._lock:
            self._profiles[profile.name] = profile
        return profile

    def profile(self, name: str, target_id: str | None = None) -> TargetProfile:
        """The profile *name*; `ProfileUnavailable` when this machine has none of that name, or
        when *target_id* (recorded with the run) says the run was requested for another
        database than the one the profile points at here."""
        found = self._profiles.get(name)
        if found is None:
            known = ", ".join(sorted(self._profiles)) or "none"
            raise ProfileUnavailable(
                f"this machine has no target profile {name!r} (it has: {known}); the run is "
                "not executed here, and nothing was read or sent"
            )
        if target_id is not None and target_id != found.target_id:
            raise ProfileUnavailable(
                f"the target profile {name!r} here points at another database than the one "
                "the run was requested for; the run is not executed here, and nothing was read "
                "or sent"
            )
        return found

    def api_key(self) -> str | None:
        return self._api_key()

    def url(self, profile: TargetProfile) -> sa.URL:
        """The profile's database URL for the agent's sync driver, with its keyring password."""
        url = sync_url(profile.target_url)
        if url.get_backend_name() == "sqlite":
            return url  # a file has no password: the keyring is not asked (it may be locked)
        password = self._db_password(profile.name)
        return url if password is None else url.set(password=password)

    def _open_sync(self, profile: TargetProfile) -> Target:
        with self._lock:
            found = self._open.get(profile)
            if found is None:
                found = connect_target(self.url(profile), profile.allow, profile.deny)
                self._open[profile] = found
            return found

    def check(self, profile: TargetProfile) -> None:
        """Connect to the profile's database and reflect it (raises what that raises: a
        connection error, a `CatalogueError` for an allow or deny entry that matches nothing)."""
        self._open_sync(profile)

    async def open(self, profile: TargetProfile) -> Target:
        """The profile's target database, reflected once and kept open until `close`."""
        return await asyncio.to_thread(self._open_sync, profile)

    def close(self) -> None:
        """Dispose of every target database opened through these profiles."""
        with self._lock:
            for target in self._open.values():
                target.dispose()
            self._open.clear()
