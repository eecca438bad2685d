"""`hitl link` prints a link the worker accepts, refuses what cannot be linked, and `hitl worker
--http` says plainly why it cannot serve."""

from __future__ import annotations

import json
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from hitl_desktop.agent import DEMO_CHANGE_SET
from hitl_desktop.cli import EXPIRED, USAGE, main
from hitl_desktop.links import SECRET_ENV, link_secret, verify


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def token(store: str, shop: object, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(
        capsys, "request", "Refund $20 on invoice 1042", "--profile", "shop", "--store", store,
        "--json",
    )  # fmt: skip
    assert code == 0, err
    return str(json.loads(out)["token_id"])


def test_hitl_link_prints_a_signed_url_to_the_review(
    store: str, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "link", token, "--for", "Ana Lima", "--expires", "30m", "--store", store,
        "--base", "https://hitl.example.org/",
    )  # fmt: skip
    assert code == 0, err
    url = out.strip()
    split = urlsplit(url)
    assert (split.scheme, split.netloc, split.path) == (
        "https",
        "hitl.example.org",
        f"/link/{token}",
    )
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    link = verify(token, query["for"], query["exp"], query["sig"], link_secret(store), now=0)
    assert link.name == "Ana Lima"

    code, out, _ = run(capsys, "link", token, "--for", "ana", "--store", store, "--json")
    doc = json.loads(out)
    assert doc["url"].startswith(f"http://127.0.0.1:8080/link/{token}?for=ana&exp=")
    assert (doc["for"], doc["scope"], doc["token_id"]) == ("ana", "decide", token)


def test_hitl_link_refuses_bad_arguments_and_finished_reviews(
    store: str, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, message in (
        (["--for", "ana", "--expires", "soon"], "--expires 'soon' is not a duration"),
        (["--for", "ana", "--base", "ftp://h"], "is not an http:// or https:// address"),
        (["--for", " "], "--for: the name the link is made for is empty"),
    ):
        code, _, err = run(capsys, "link", token, "--store", store, *argv)
        assert code == USAGE and message in err, err
    code, _, err = run(capsys, "link", "tok_nope", "--for", "ana", "--store", store)
    assert code == 1 and "no token with id 'tok_nope'" in err

    assert run(capsys, "reject", token, "--store", store, "--reviewer", "bo")[0] == 0
    code, _, err = run(capsys, "link", token, "--for", "ana", "--store", store)
    assert code == 1 and f"token {token} is already decided" in err
    assert code != EXPIRED


def test_hitl_link_refuses_the_token_a_change_set_waits_on_and_names_its_parts(
    store: str, shop: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "request", DEMO_CHANGE_SET, "--profile", "shop", "--store", store, "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    first, second = (part["token_id"] for part in doc["parts"])
    waits_on = doc["run"]["waiting_token_id"]
    assert waits_on.startswith("grp_")

    code, out, err = run(capsys, "link", waits_on, "--for", "ana", "--store", store)
    assert code == USAGE and out == "", err
    assert f"token {waits_on} is what run {doc['run']['id']} waits on for the 2 parts" in err
    assert "link a part's token instead" in err
    assert f"part 1 'Refund $20 on invoice 1042': {first} (waiting)" in err
    assert f"part 2 'Mark invoice 4854 as paid': {second} (waiting)" in err

    code, out, err = run(capsys, "link", second, "--for", "ana", "--store", store)
    assert code == 0, err
    assert urlsplit(out.strip()).path == f"/link/{second}"


def test_without_a_secret_link_and_worker_http_say_what_to_do(
    store: str,
    token: str,
    no_keyring: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    code, _, err = run(capsys, "link", token, "--for", "ana", "--store", store)
    assert code == 1 and f"set {SECRET_ENV}" in err, err
    code, _, err = run(capsys, "worker", "--store", store, "--http", "127.0.0.1:0")
    assert code == 1 and "--http: " in err and SECRET_ENV in err, err


def test_worker_http_names_a_bad_or_busy_address(
    store: str, shop: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "worker", "--store", store, "--http", "localhost")
    assert code == USAGE and "'localhost' is not HOST:PORT" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(capsys, "worker", "--store", store, "--http", f"127.0.0.1:{port}")
    assert code == 1 and f"--http: cannot serve links on 127.0.0.1:{port}" in err, err
    assert " started on " not in out  # the address is taken before the engine starts
