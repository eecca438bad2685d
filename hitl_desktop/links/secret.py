"""The link secret of a store: the key links are signed with, kept out of the store.

Where it comes from, first match wins:

1. ``HITL_LINK_SECRET`` in the environment (at least 32 characters): for a worker on a server,
   and for every machine that makes links for that worker;
2. the OS keyring, service ``hitl-desktop``, username ``link-secret:<store>`` (the store's
   server and database, or its SQLite file), created there on first use.

Whoever can read the secret can make links for the store; it is never printed or logged.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Mapping

from .. import secrets
from ..config import LINK_SECRET_ENV, environment_link_secret

SECRET_ENV = LINK_SECRET_ENV
MIN_LENGTH = 32
"""The shortest secret taken from the environment, in characters."""


class LinkSecretUnavailable(RuntimeError):
    """No link secret can be read or kept here; the message says what to do."""


def link_secret(store: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The secret links to *store* are signed with (see the module's docstring): read from the
    environment or the keyring, made and saved in the keyring the first time."""
    given = environment_link_secret(environ)
    if given:
        if len(given) < MIN_LENGTH:
            raise LinkSecretUnavailable(
                f"{SECRET_ENV} is {len(given)} characters long; a link secret needs at least "
                f"{MIN_LENGTH} (e.g. from: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return given.encode("utf-8")
    try:
        stored = secrets.get_link_secret(store)
        if stored is None:
            stored = random.token_urlsafe(32)
            secrets.set_link_secret(store, stored, _NO_KEYRING)
    except secrets.SecretsUnavailable as exc:
        message = str(exc)
        if _NO_KEYRING not in message:
            message = f"{message} {_NO_KEYRING}"
        raise LinkSecretUnavailable(message) from None
    return stored.encode("utf-8")


def secret_user(store: str) -> str:
    """The keyring username of *store*'s link secret (see secrets.link_secret_user)."""
    return secrets.link_secret_user(store)


_NO_KEYRING = (
    f"Signed links need a secret kept out of the store: set {SECRET_ENV} (at least "
    f"{MIN_LENGTH} characters, the same for the worker and for whoever makes links), or run "
    "where an OS keyring (Secret Service, Keychain, Credential Manager) is usable."
)
