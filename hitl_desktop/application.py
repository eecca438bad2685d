"""The application layer: what the console, the CLI and the self-test share above the agent.

It turns this machine's settings into what the agent needs — the `Targets` (profiles and the
keyring's secrets) that db-change runs execute with, and a `ChangeRequest` for a reviewer's
text — so that each front end says the same thing when, say, no target is set.
"""

from __future__ import annotations

from . import secrets
from .agent import ChangeRequest, RequestInvalid, Targets
from .config import Settings


def local_targets(settings: Settings) -> Targets:
    """The profiles *settings* define, with the keyring's API key and database passwords."""
    return Targets(
        settings.target_profiles(),
        api_key=secrets.get_api_key,
        db_password=secrets.get_db_password,
    )


def change_request(
    settings: Settings, text: str, *, profile: str | None = None, timeout: str | None = None
) -> ChangeRequest:
    """The `ChangeRequest` for *text* under *profile* (default: the active one).

    Raises `RequestInvalid` naming the problem: no target set, a profile this machine lacks, an
    empty or over-long request, a bad timeout.
    """
    name = profile or settings.profile
    profiles = settings.target_profiles()
    found = profiles.get(name)
    if found is None:
        known = ", ".join(sorted(profiles)) or "none"
        raise RequestInvalid(
            f"no target profile {name!r} (profiles here: {known}): choose a target database in "
            "the console's Settings, add a profile with 'hitl profile add NAME --target URL', "
            "set HITL_TARGET, or start the console with --demo"
        )
    return ChangeRequest.from_json(
        {
            "request": text.strip(),
            "profile": name,
            "target_id": found.target_id,
            "timeout": timeout or settings.token_timeout,
        }
    )
