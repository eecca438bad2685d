"""Signing and checking links: every signed field counts, the expiry is checked after the
signature, and the secret comes from the environment or the keyring, never the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitl_desktop.links import (
    SECRET_ENV,
    LinkExpired,
    LinkInvalid,
    LinkSecretUnavailable,
    link_secret,
    make_link,
    secret_user,
    verify,
)
from hitl_desktop.secrets import SERVICE
from tests.keyrings import MemoryKeyring

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def parts(url: str) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    split = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    return {"token_id": split.path.rsplit("/", 1)[1], **query}


def check(p: dict[str, str], secret: bytes = SECRET, now: float = NOW) -> object:
    return verify(p["token_id"], p.get("for"), p.get("exp"), p.get("sig"), secret, now=now)


def test_a_link_verifies_with_its_secret_until_it_expires() -> None:
    link = make_link("tok_1", " Ana Lima ", 3600, now=NOW)
    url = link.url("https://hitl.example.org/", SECRET)
    assert url.startswith("https://hitl.example.org/link/tok_1?for=Ana+Lima&exp=1800003600&sig=")
    assert check(parts(url)) == link
    assert link.name == "Ana Lima" and link.scope == "decide"
    with pytest.raises(LinkExpired):
        check(parts(url), now=NOW + 3600)


@pytest.mark.parametrize(
    "change",
    [
        {"token_id": "tok_2"},
        {"for": "Mallory"},
        {"exp": "1800007200"},
        {"exp": "01800003600"},  # the same number, spelt otherwise
        {"sig": "0" * 64},
        {"sig": ""},
        {"exp": "soon"},
    ],
)
def test_changing_any_part_of_a_link_breaks_it(change: dict[str, str]) -> None:
    url = make_link("tok_1", "ana", 3600, now=NOW).url("http://h", SECRET)
    with pytest.raises(LinkInvalid):
        check(parts(url) | change)


def test_another_secret_and_a_tampered_expired_link_are_forgeries() -> None:
    url = make_link("tok_1", "ana", 60, now=NOW - 3600).url("http://h", SECRET)
    with pytest.raises(LinkInvalid):
        check(parts(url), secret=b"x" * 32)
    with pytest.raises(LinkInvalid):  # not "expired": its expiry was changed
        check(parts(url) | {"exp": str(int(NOW) + 60)})


@pytest.mark.parametrize("name", ["", "  ", "ana\nbob", "x" * 201])
def test_a_link_is_made_for_one_printable_name(name: str) -> None:
    with pytest.raises(ValueError):
        make_link("tok_1", name, 60)


def test_the_secret_comes_from_the_environment_first(memory_keyring: MemoryKeyring) -> None:
    assert link_secret("sqlite:///runs.db", {SECRET_ENV: "e" * 40}) == b"e" * 40
    assert memory_keyring.entries == {}
    with pytest.raises(LinkSecretUnavailable, match="at least 32"):
        link_secret("sqlite:///runs.db", {SECRET_ENV: "short"})


def test_the_keyring_keeps_one_secret_per_store_made_on_first_use(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    first = link_secret(store, {})
    assert len(first) >= 32
    assert link_secret(store, {}) == first
    assert memory_keyring.entries == {(SERVICE, secret_user(store)): first.decode()}
    other = link_secret(f"sqlite:///{tmp_path / 'other.db'}", {})
    assert other != first
    # A team store's secret is the server's and database's, whatever the role or driver.
    a = secret_user("postgresql+asyncpg://ana:pw@db.example.org/hitl")
    assert a == secret_user("postgresql://worker@db.example.org:5432/hitl")
    assert "pw" not in a and "ana" not in a


def test_without_environment_or_keyring_the_error_says_what_to_do(no_keyring: None) -> None:
    with pytest.raises(LinkSecretUnavailable, match=f"set {SECRET_ENV}"):
        link_secret("sqlite:///runs.db", {})
