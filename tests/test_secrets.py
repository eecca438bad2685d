"""The API key: environment first, then the keyring; never a file, never shown in full."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import KeyringError
from sqlalchemy.engine import make_url

from hitl_desktop import secrets
from hitl_desktop.secrets import (
    InvalidApiKey,
    SecretsUnavailable,
    backend_info,
    delete_api_key,
    get_api_key,
    key_source,
    mask,
    set_api_key,
)
from tests.keyrings import MemoryKeyring

KEY = "sk-proj-TESTabcdefghijklmnopqrstuvwxyz0123456789wxyz"


class BrokenKeyring(MemoryKeyring):
    """A keyring that is there but fails, echoing the password in its error like a bad backend."""

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringError("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError(f"could not store {password}")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringError("the collection is locked")


@pytest.fixture
def use_keyring() -> Iterator[object]:
    """Install a keyring backend for one test, restoring the previous one afterwards."""
    previous = keyring.get_keyring()
    installed: list[KeyringBackend] = []

    def install(backend: KeyringBackend) -> KeyringBackend:
        keyring.set_keyring(backend)
        installed.append(backend)
        return backend

    yield install
    keyring.set_keyring(previous)


@pytest.fixture
def memory(use_keyring, monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return use_keyring(MemoryKeyring())


@pytest.fixture
def no_backend(use_keyring, monkeypatch: pytest.MonkeyPatch) -> KeyringBackend:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return use_keyring(fail.Keyring())


def test_set_get_delete_round_trip(memory: MemoryKeyring):
    assert get_api_key() is None
    assert key_source() is None
    set_api_key(KEY)
    assert memory.entries == {("hitl-desktop", "openai-api-key"): KEY}
    assert get_api_key() == KEY
    assert key_source() == "keyring"
    delete_api_key()
    assert memory.entries == {}
    assert get_api_key() is None
    delete_api_key()  # nothing stored: still fine


def test_set_replaces_the_stored_key(memory: MemoryKeyring):
    set_api_key(KEY)
    set_api_key("sk-other-key-0123456789")
    assert get_api_key() == "sk-other-key-0123456789"
    assert len(memory.entries) == 1


def test_the_environment_wins_over_the_keyring(memory: MemoryKeyring):
    set_api_key(KEY)
    env = {"OPENAI_API_KEY": "sk-from-the-environment"}
    assert get_api_key(env) == "sk-from-the-environment"
    assert key_source(env) == "environment"


def test_the_process_environment_is_read_by_default(
    memory: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "  sk-env-with-a-newline\n")
    assert get_api_key() == "sk-env-with-a-newline"
    assert key_source() == "environment"


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_a_blank_environment_variable_counts_as_unset(memory: MemoryKeyring, blank: str):
    set_api_key(KEY)
    assert get_api_key({"OPENAI_API_KEY": blank}) == KEY
    assert key_source({"OPENAI_API_KEY": blank}) == "keyring"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "empty"),
        ("sk-two words", "spaces"),
        ("sk-abc\n", "line breaks"),
        ("sk-\x07", "control"),
    ],
)
def test_set_rejects_keys_that_cannot_be_right(memory: MemoryKeyring, bad: str, reason: str):
    with pytest.raises(InvalidApiKey, match=reason) as caught:
        set_api_key(bad)
    assert memory.entries == {}
    if bad.strip():
        assert bad.strip() not in str(caught.value)


def test_backend_info_names_a_usable_backend(memory: MemoryKeyring):
    info = backend_info()
    assert info.usable
    assert info.backend == "tests.keyrings.MemoryKeyring"
    assert info.name in info.explanation


def test_the_secret_service_backend_has_a_friendly_name(use_keyring):
    from keyring.backends import SecretService

    # Describing a backend does not talk to D-Bus; only its get/set calls would.
    info = secrets._describe(SecretService.Keyring())
    assert info.usable
    assert info.name.startswith("Secret Service")
    assert info.backend == "keyring.backends.SecretService.Keyring"


def test_no_backend_is_explained_and_set_refuses(no_backend, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    info = backend_info()
    assert not info.usable
    assert "No keyring backend is usable" in info.explanation
    assert "OPENAI_API_KEY" in info.explanation
    assert "gnome-keyring" in info.explanation and "KWallet" in info.explanation

    with pytest.raises(SecretsUnavailable, match="No keyring backend is usable") as caught:
        set_api_key(KEY)
    assert KEY not in str(caught.value)
    assert caught.value.__context__ is None  # no backend traceback chained to it
    with pytest.raises(SecretsUnavailable):
        delete_api_key()
    # Reading simply finds nothing; the environment still works.
    assert get_api_key() is None
    assert key_source() is None
    assert get_api_key({"OPENAI_API_KEY": KEY}) == KEY
    # And nothing was written to a file instead.
    assert list(tmp_path.iterdir()) == []


def test_the_null_backend_is_unusable_too(use_keyring, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    use_keyring(null.Keyring())
    assert not backend_info().usable
    with pytest.raises(SecretsUnavailable):
        set_api_key(KEY)
    assert get_api_key() is None


def test_a_file_backed_keyring_is_refused(use_keyring, monkeypatch: pytest.MonkeyPatch):
    # A stand-in for keyrings.alt's plaintext keyring: secrets in a file are not a secret store.
    plaintext = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file"})
    backend = use_keyring(plaintext())
    info = backend_info()
    assert not info.usable
    assert "file" in info.explanation
    with pytest.raises(SecretsUnavailable):
        set_api_key(KEY)
    assert backend.entries == {}


def test_a_failing_backend_raises_without_echoing_the_key(use_keyring, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    use_keyring(BrokenKeyring())
    with pytest.raises(SecretsUnavailable) as caught:
        set_api_key(KEY)
    message = str(caught.value)
    assert KEY not in message
    assert mask(KEY) in message  # the backend's echo, masked
    # The backend's exception (which holds the key) is not chained to it.
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    with pytest.raises(SecretsUnavailable, match="locked"):
        get_api_key()
    with pytest.raises(SecretsUnavailable, match="locked"):
        delete_api_key()


def test_the_key_never_reaches_a_log_line(memory: MemoryKeyring, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    set_api_key(KEY)
    get_api_key()
    key_source()
    backend_info()
    delete_api_key()
    assert KEY not in caplog.text
    assert KEY not in repr(backend_info())


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (KEY, "sk-proj-…wxyz"),
        ("sk-abcdefghijklmnopqrstuvwxyz1234", "sk-…1234"),
        ("sk-svcacct-abcdefghijklmnopqrstuvwxyz9876", "sk-svcacct-…9876"),
        ("abcdefghijklmnop1234", "…1234"),
        ("sk-abcdefghij", "sk-…ij"),
        ("sk-short", "sk-…"),
        ("x", "…"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_shows_at_most_four_characters_of_the_secret(key: str | None, shown: str):
    assert mask(key) == shown
    if key:
        prefix = shown.split("…")[0]
        assert len(shown) - len(prefix) - 1 <= 4
        assert key not in shown or len(key) <= len(prefix)


# ------------------------------------------------------------------ a team store's password

STORE = "postgresql://ana@db.example:5432/hitl"


def test_a_store_password_is_kept_by_the_store_address_and_put_in_only_to_connect(
    memory: MemoryKeyring,
):
    assert secrets.with_store_password(STORE) == STORE  # none saved: the URL as it is
    secrets.set_store_password(STORE, "pa:ss/word")
    assert memory.entries == {("hitl-desktop", f"store-password:{STORE}"): "pa:ss/word"}
    # The same server, role and database however written: the same password.
    for spelling in (STORE, "postgresql+asyncpg://ana@db.example/hitl"):
        assert secrets.get_store_password(spelling) == "pa:ss/word"
    connect = secrets.with_store_password(STORE)
    assert make_url(connect).password == "pa:ss/word"
    assert make_url(connect).render_as_string(hide_password=True) == STORE.replace(
        "ana@", "ana:***@"
    )
    # Another server, role or database never gets it.
    for other in (
        "postgresql://ana@evil.example:5432/hitl",
        "postgresql://ana@db.example:6543/hitl",
        "postgresql://bob@db.example:5432/hitl",
        "postgresql://ana@db.example:5432/other",
    ):
        assert secrets.get_store_password(other) is None
        assert secrets.with_store_password(other) == other
    secrets.delete_store_password(STORE)
    secrets.delete_store_password(STORE)  # nothing stored: still fine
    assert memory.entries == {}


def test_a_store_password_without_a_keyring_is_refused_not_written_elsewhere(
    no_backend: KeyringBackend,
):
    with pytest.raises(SecretsUnavailable, match="the store password cannot be saved") as caught:
        secrets.set_store_password(STORE, "secret-pw")
    assert "OPENAI_API_KEY" not in str(caught.value) and "secret-pw" not in str(caught.value)
    assert secrets.get_store_password(STORE) is None
    with pytest.raises(InvalidApiKey, match="store password is empty"):
        secrets.set_store_password(STORE, "")
