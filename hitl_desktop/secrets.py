"""The OpenAI API key and the databases' passwords: the only keyring call site.

Where the key comes from, first match wins:

1. ``OPENAI_API_KEY`` in the environment, when set and not blank (read through
   ``config.environment_api_key``, the one module that reads the environment);
2. the OS keyring, service ``hitl-desktop``, username ``openai-api-key`` (Secret Service, i.e.
   GNOME Keyring or KWallet on Linux; the Keychain on macOS; the Credential Manager on Windows).

A target profile's database password is kept under the same service, username
``db-password:<profile>`` (:func:`get_db_password`, :func:`set_db_password`); it is never part of
a URL that is saved, stored in a run, logged or printed.

A team store's password (the reviewer's PostgreSQL role) is kept under username
``store-password:<URL>``, the store's URL without a password (:func:`get_store_password`,
:func:`set_store_password`): keyed by the address so a password is never sent to another
server than the one it was saved for. :func:`with_store_password` puts it into the URL in
memory, only to connect.

The key is never written anywhere else: when no keyring backend is usable, :func:`set_api_key`
raises :class:`SecretsUnavailable` and says what to install; it never falls back to a file
(a "plaintext" keyring such as ``keyrings.alt`` counts as unusable). The key never appears in a
log line, an exception message or a repr: show it with :func:`mask`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keyring
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, NoKeyringError, PasswordDeleteError
from sqlalchemy.engine import URL, make_url

from .config import API_KEY_ENV, environment_api_key

SERVICE = "hitl-desktop"
USERNAME = "openai-api-key"

KeySource = Literal["environment", "keyring"]

NO_BACKEND = (
    "No keyring backend is usable, so the API key cannot be saved. On Linux, install and run "
    "a Secret Service provider (gnome-keyring with libsecret, or KWallet) in your desktop "
    f"session; or set {API_KEY_ENV} in the environment the app starts from."
)

__all__ = [
    "SERVICE",
    "USERNAME",
    "BackendInfo",
    "InvalidApiKey",
    "KeySource",
    "SecretsUnavailable",
    "backend_info",
    "delete_api_key",
    "delete_db_password",
    "delete_store_password",
    "get_api_key",
    "get_db_password",
    "get_store_password",
    "key_source",
    "mask",
    "set_api_key",
    "set_db_password",
    "set_store_password",
    "stored_api_key",
    "validate_api_key",
    "with_store_password",
]


class SecretsUnavailable(RuntimeError):
    """The keyring cannot store or read the key; the message says why and what to do."""


class InvalidApiKey(ValueError):
    """A key that cannot be right (empty, or containing whitespace); the message omits it."""


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """The keyring backend in use: a display *name*, whether it can hold the key, and why not.

    *backend* is the backend's dotted class path (``keyring.backends.SecretService.Keyring``).
    """

    name: str
    usable: bool
    explanation: str
    backend: str


# Display names of the backends keyring ships, by module (the class name does not vary).
_NAMES = {
    "keyring.backends.SecretService": "Secret Service (GNOME Keyring or compatible)",
    "keyring.backends.libsecret": "Secret Service via libsecret",
    "keyring.backends.kwallet": "KWallet",
    "keyring.backends.macOS": "macOS Keychain",
    "keyring.backends.Windows": "Windows Credential Manager",
}


def get_api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The key: ``OPENAI_API_KEY`` when set, else the keyring's, else ``None``.

    *environ* defaults to the process environment. No usable keyring means no stored key
    (``None``); a keyring that is there but fails (locked, D-Bus error) raises
    :class:`SecretsUnavailable`.
    """
    from_env = environment_api_key(environ)
    if from_env is not None:
        return from_env
    return _stored_key()


def stored_api_key() -> str | None:
    """The key saved in the keyring, ignoring ``OPENAI_API_KEY``; ``None`` when none is saved."""
    return _stored_key()


def key_source(environ: Mapping[str, str] | None = None) -> KeySource | None:
    """Where :func:`get_api_key` finds the key: ``"environment"``, ``"keyring"`` or ``None``."""
    if environment_api_key(environ) is not None:
        return "environment"
    return "keyring" if _stored_key() is not None else None


def set_api_key(key: str) -> None:
    """Store *key* in the OS keyring, replacing any stored key.

    Raises :class:`InvalidApiKey` for an empty key or one with whitespace, and
    :class:`SecretsUnavailable` when no usable keyring backend can hold it.
    """
    validate_api_key(key)
    _save(USERNAME, key, "the key", NO_BACKEND)


def delete_api_key() -> None:
    """Remove the stored key; nothing happens when none is stored.

    Raises :class:`SecretsUnavailable` when no usable keyring backend exists or it fails.
    ``OPENAI_API_KEY`` is not touched: it belongs to the environment the app started from.
    """
    _forget(USERNAME, "the key")


def db_password_user(profile: str) -> str:
    """The keyring username under which *profile*'s database password is kept."""
    return f"db-password:{profile}"


def get_db_password(profile: str) -> str | None:
    """The password of *profile*'s target database, or None when none is stored (or no keyring
    is usable). A keyring that is there but fails raises :class:`SecretsUnavailable`."""
    return _stored_key(db_password_user(profile))


def set_db_password(profile: str, password: str) -> None:
    """Keep *password* for *profile*'s database in the OS keyring (replacing any).

    Raises :class:`SecretsUnavailable` when no usable keyring can hold it; never falls back."""
    if not isinstance(password, str) or not password:
        raise InvalidApiKey("The database password is empty.")
    no_backend = NO_BACKEND.replace("the API key", "the database password")
    _save(db_password_user(profile), password, "the database password", no_backend)


def delete_db_password(profile: str) -> None:
    """Forget *profile*'s database password; nothing happens when none is stored."""
    _forget(db_password_user(profile), "the database password")


def store_password_user(url: str) -> str:
    """The keyring username of the password for the store at *url* (its password ignored)."""
    return f"store-password:{_store_address(url)}"


def get_store_password(url: str) -> str | None:
    """The password saved for the store at *url*, or None (none saved, or no usable keyring).
    A keyring that is there but fails raises :class:`SecretsUnavailable`."""
    return _stored_key(store_password_user(url))


def set_store_password(url: str, password: str) -> None:
    """Keep *password* for the store at *url* in the OS keyring (replacing any).

    Raises :class:`SecretsUnavailable` when no usable keyring can hold it; never falls back."""
    if not isinstance(password, str) or not password:
        raise InvalidApiKey("The store password is empty.")
    no_backend = (
        "No keyring backend is usable, so the store password cannot be saved. On Linux, "
        "install and run a Secret Service provider (gnome-keyring with libsecret, or KWallet) "
        "in your desktop session; a password is never kept in a file."
    )
    _save(store_password_user(url), password, "the store password", no_backend)


def delete_store_password(url: str) -> None:
    """Forget the password of the store at *url*; nothing happens when none is stored."""
    _forget(store_password_user(url), "the store password")


def link_secret_user(url: str) -> str:
    """The keyring username of the secret signed links to the store at *url* are made with:
    its server and database whatever the role and driver, or its SQLite file's absolute path."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"link-secret:sqlite:{Path(parsed.database or '').absolute()}"
    return f"link-secret:{_store_address(url, with_role=False)}"


def get_link_secret(url: str) -> str | None:
    """The link secret kept for the store at *url*, or None (none kept, or no usable keyring).
    A keyring that is there but fails raises :class:`SecretsUnavailable`."""
    return _stored_key(link_secret_user(url))


def set_link_secret(url: str, secret: str, no_backend: str) -> None:
    """Keep *secret* as the link secret of the store at *url*; *no_backend* says what to do
    when no keyring can hold it (raised as :class:`SecretsUnavailable`)."""
    _save(link_secret_user(url), secret, "the link secret", no_backend)


def with_store_password(url: str) -> str:
    """*url* with its saved password put in, to connect: never save, log or show the result.
    A URL that holds a password already, or one with none saved, is returned as it is."""
    parsed = make_url(url)
    if parsed.password is not None or parsed.get_backend_name() == "sqlite":
        return url
    password = get_store_password(url)
    if password is None:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def backend_info() -> BackendInfo:
    """Which keyring backend holds the key here, and whether it can (with the reason if not)."""
    return _describe(keyring.get_keyring())


def validate_api_key(key: str) -> None:
    """Raise :class:`InvalidApiKey` for a key that cannot be right: empty, spaces, control chars.

    The format is not checked further: OpenAI-compatible servers use keys of any shape.
    """
    if not isinstance(key, str) or not key:
        raise InvalidApiKey("The API key is empty.")
    if any(char.isspace() for char in key):
        raise InvalidApiKey("The API key contains spaces or line breaks; paste it on one line.")
    if not key.isprintable():
        raise InvalidApiKey("The API key contains control characters.")


_KEY_PREFIX = re.compile(r"^sk-(?:proj-|svcacct-|admin-)?")


def mask(key: str | None) -> str:
    """A recognisable but useless form of *key*: ``sk-…abcd``; never more than 4 of its chars.

    The well-known prefix (``sk-``, ``sk-proj-``, …) is kept as it says nothing secret. Short
    keys show less: a 10-character key shows only its last 2 characters, a shorter one none.
    """
    if not key:
        return ""
    prefix_match = _KEY_PREFIX.match(key)
    prefix = prefix_match.group(0) if prefix_match else ""
    rest = key[len(prefix) :]
    if len(rest) >= 16:
        return f"{prefix}…{rest[-4:]}"
    if len(rest) >= 10:
        return f"{prefix}…{rest[-2:]}"
    return f"{prefix}…"


# ------------------------------------------------------------------------------------ private


def _stored_key(username: str = USERNAME) -> str | None:
    backend = keyring.get_keyring()
    if not _describe(backend).usable:
        return None
    try:
        return backend.get_password(SERVICE, username)
    except NoKeyringError:
        return None
    except KeyringError as exc:
        raise SecretsUnavailable(
            f"The keyring ({_describe(backend).name}) could not be read: "
            f"{str(exc) or type(exc).__name__}"
        ) from None


def _save(username: str, secret: str, what: str, no_backend: str) -> None:
    backend = keyring.get_keyring()
    info = _describe(backend)
    if not info.usable:  # said of *what*, not of the API key
        raise SecretsUnavailable(info.explanation.replace(NO_BACKEND, no_backend))
    try:
        backend.set_password(SERVICE, username, secret)
        return
    except NoKeyringError:
        failure = no_backend
    except KeyringError as exc:
        failure = (
            f"The keyring ({_describe(backend).name}) could not save {what}: "
            f"{_scrub(str(exc), secret) or type(exc).__name__}"
        )
    # Raised outside the except clause so the backend's exception, which may hold the secret,
    # is not even kept as __context__.
    raise SecretsUnavailable(failure)


def _forget(username: str, what: str) -> None:
    backend = _require_usable()
    try:
        backend.delete_password(SERVICE, username)
    except PasswordDeleteError:
        return  # nothing stored: the wanted state already
    except NoKeyringError:
        raise SecretsUnavailable(NO_BACKEND) from None
    except KeyringError as exc:
        raise SecretsUnavailable(
            f"The keyring ({_describe(backend).name}) could not remove {what}: "
            f"{str(exc) or type(exc).__name__}"
        ) from None


def _require_usable() -> KeyringBackend:
    backend = keyring.get_keyring()
    info = _describe(backend)
    if not info.usable:
        raise SecretsUnavailable(info.explanation)
    return backend


def _describe(backend: KeyringBackend) -> BackendInfo:
    # A chainer (several viable backends) saves into its first backend: describe that one.
    from keyring.backends.chainer import ChainerBackend

    target = backend
    if isinstance(backend, ChainerBackend):
        chained = list(ChainerBackend.backends)
        if not chained:
            return BackendInfo("none", False, NO_BACKEND, _path(backend))
        target = chained[0]
    module = type(target).__module__
    path = _path(target)
    if module in ("keyring.backends.fail", "keyring.backends.null"):
        return BackendInfo("none", False, NO_BACKEND, path)
    if module.startswith("keyrings.alt"):
        return BackendInfo(
            f"{type(target).__name__} (keyrings.alt)",
            False,
            "The configured keyring backend keeps secrets in a file, which is not a secret "
            "store, so the API key is not saved there. " + NO_BACKEND,
            path,
        )
    name = _NAMES.get(module) or str(getattr(target, "name", type(target).__name__))
    return BackendInfo(name, True, f"The API key is kept in {name}.", path)


def _store_address(url: str, with_role: bool = True) -> str:
    """The store's address as a key: the same server, port, role (unless not *with_role*) and
    database give the same text whatever the driver, the password or an omitted default port."""
    parsed = make_url(url)
    return URL.create(
        parsed.get_backend_name(),
        parsed.username if with_role else None,
        None,
        parsed.host,
        parsed.port or _PG_PORT,
        parsed.database,
    ).render_as_string(hide_password=False)


_PG_PORT = 5432


def _path(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _scrub(text: str, key: str) -> str:
    """*text* with every occurrence of *key* masked (a backend's message might echo it)."""
    return text.replace(key, mask(key)) if key else text
