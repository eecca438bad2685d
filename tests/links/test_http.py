"""Signed links through real HTTP requests against `hitl worker --http` processes on
127.0.0.1: the page a link shows, its decision through the engine's policy and audit path, and
every refusal (forged, tampered, expired, reused, oversized, wrong method, rate-limited)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from hitl_desktop.engine import Engine, RunStatus, TokenStatus
from hitl_desktop.links import MAX_BODY
from tests.cli.test_worker import WAIT
from tests.links.conftest import Served, waiting_review

TWO_APPROVALS = """\
[[rule]]
name = "two pairs of eyes"
table = "refunds"
approvals = 2
"""


def refunds(target: Path, invoice: int) -> list[tuple[object, ...]]:
    with sqlite3.connect(target) as conn:
        return conn.execute(
            "select amount, status from refunds where invoice_id=?", (invoice,)
        ).fetchall()


def form(page: str) -> dict[str, str]:
    """The hidden fields and the action of the page's form."""
    action = re.search(r'<form method="post" action="([^"]+)"', page)
    seen = re.search(r'name="seen" value="([0-9a-f]{64})"', page)
    assert action and seen, page
    return {"action": action.group(1).replace("&amp;", "&"), "seen": seen.group(1)}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


async def decide(
    http: httpx.AsyncClient, url: str, decision: str = "approve", comment: str = ""
) -> httpx.Response:
    """GET the link's page, then POST its form as a browser does."""
    page = await http.get(url)
    assert page.status_code == 200, page.text
    fields = form(page.text)
    target = str(httpx.URL(url).join(fields["action"]))
    data = {"decision": decision, "comment": comment, "seen": fields["seen"]}
    return await http.post(target, data=data)


async def test_a_link_shows_the_review_with_its_diff_as_plain_text(
    served: Served, console: Engine, http: httpx.AsyncClient
) -> None:
    token = await waiting_review(console)
    response = await http.get(served.link(token))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    page = response.text
    assert "<script" not in page
    assert "Refund $20 on invoice 1042" in page  # the request
    assert "Refund $20.00 on invoice INV-001042" in page  # the agent's summary
    assert "Insert into refunds" in page
    assert '<td class="before"></td><td class="after">20.00</td>' in page
    assert 'value="approve">Approve</button>' in page
    assert 'value="reject">Reject</button>' in page
    assert "This link was made for ana" in page
    assert "edits" not in form(page)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
async def test_approving_through_a_link_completes_the_run_and_writes_once(
    served: Served, console: Engine, http: httpx.AsyncClient, shop: Path
) -> None:
    token = await waiting_review(console)
    url = served.link(token, "Ana Lima")
    response = await decide(http, url, "approve", "ok <b>by me</b>")
    assert response.status_code == 200, response.text
    assert "<h1>Approved</h1>" in response.text
    assert "applied 1 row change(s) after approval by via link by Ana Lima" in response.text
    assert refunds(shop, 1042) == [(20, "pending")]
    line = await served.worker.until(lambda line: f"decided: approve by {console.actor}" in line)
    assert line.endswith(
        f"decided: approve by {console.actor} via link by Ana Lima (token {token})"
    )

    decided = await console.get_token(token)
    assert decided.status == TokenStatus.COMPLETED
    assert decided.completed_by == console.actor  # the worker's identity: same OS account
    assert decided.output["reviewer"] == "via link by Ana Lima"
    assert decided.output["comment"] == "ok <b>by me</b>"
    assert decided.output["link"]["for"] == "Ana Lima"
    entries = [e for e in await console.audit_entries() if e.token_id == token]
    assert [e.actor for e in entries] == [console.actor]
    recorded = json.loads(entries[0].data or "")
    assert recorded["decision"]["reviewer"] == "via link by Ana Lima"
    assert recorded["decision"]["link"]["for"] == "Ana Lima"
    assert recorded["seen"] is not None
    assert recorded["seen"] == decided.verdicts[0].seen

    # Reused: the page, and a second decision, say who decided and when; nothing more is written.
    again = await http.get(url)
    assert again.status_code == 409
    assert "already approved by via link by Ana Lima (recorded as " in again.text
    assert re.search(r"at \d{4}-\d\d-\d\d \d\d:\d\d UTC", again.text)
    fields = {"decision": "approve", "seen": decided.verdicts[0].seen or ""}
    posted = await http.post(url, data=fields)
    assert posted.status_code == 409
    assert "already approved" in posted.text
    assert refunds(shop, 1042) == [(20, "pending")]
    run = await console.get_run(decided.run_id or "")
    assert run.status == RunStatus.COMPLETED


async def test_a_rejection_writes_nothing(
    served: Served, console: Engine, http: httpx.AsyncClient, shop: Path
) -> None:
    token = await waiting_review(console)
    response = await decide(http, served.link(token), "reject", "not this month")
    assert response.status_code == 200
    assert "rejected by via link by ana: not this month; nothing was written" in response.text
    assert refunds(shop, 1042) == []


async def test_forged_and_tampered_links_are_refused(
    served: Served, console: Engine, http: httpx.AsyncClient, shop: Path
) -> None:
    token = await waiting_review(console)
    other = await waiting_review(console, "Refund $10 on invoice 1043")
    url = served.link(token)
    signature = parse_qs(urlsplit(url).query)["sig"][0]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    later = str(int(parse_qs(urlsplit(url).query)["exp"][0]) + 86400)
    for bad in (
        with_query(url, sig=forged),
        with_query(url, exp=later),  # a longer life
        with_query(url, **{"for": "mallory"}),  # another name
        url.replace(token, other),  # another review
        with_query(url, sig=""),
    ):
        response = await http.get(bad)
        assert response.status_code == 403, bad
        assert "This link is not valid" in response.text
        posted = await http.post(bad, data={"decision": "approve", "seen": "0" * 64})
        assert posted.status_code in (403, 429)
    assert (await console.get_token(token)).status == TokenStatus.WAITING
    assert refunds(shop, 1042) == []


async def test_an_expired_link_and_an_expired_review_are_gone(
    served: Served, console: Engine, http: httpx.AsyncClient
) -> None:
    token = await waiting_review(console)
    expired = served.link(token, lifetime=60, now=time.time() - 3600)
    response = await http.get(expired)
    assert response.status_code == 410
    assert "This link has expired" in response.text
    posted = await http.post(expired, data={"decision": "approve", "seen": "0" * 64})
    assert posted.status_code == 410

    await console.apply_policy('[[rule]]\nname = "quick"\ntable = "refunds"\ntimeout = "1s"\n')
    short = await waiting_review(console, "Refund $10 on invoice 1043")
    await served.worker.until(
        lambda line: f"timed out: nobody decided in time (token {short})" in line
    )
    response = await http.get(served.link(short))
    assert response.status_code == 410
    assert "This review has expired" in response.text


async def test_a_body_over_64_kib_is_refused_with_or_without_its_length(
    served: Served, console: Engine, http: httpx.AsyncClient
) -> None:
    token = await waiting_review(console)
    url = served.link(token)
    big = b"comment=" + b"x" * MAX_BODY
    declared = await http.post(
        url, content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert declared.status_code == 413
    assert "at most 64 KiB" in declared.text

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):  # 17 x 4 KiB, sent chunked: no Content-Length
            yield b"x" * 4096

    streamed = await http.post(url, content=chunks())
    assert streamed.status_code == 413
    assert (await console.get_token(token)).status == TokenStatus.WAITING


async def test_other_methods_are_not_allowed(
    served: Served, console: Engine, http: httpx.AsyncClient
) -> None:
    token = await waiting_review(console)
    url = served.link(token)
    for method in ("PUT", "DELETE", "PATCH"):
        response = await http.request(method, url)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET, HEAD, POST"
        assert "Method not allowed" in response.text
    assert (await http.get(served.base + "/")).status_code == 404


async def test_an_edit_cannot_be_sent_through_a_link(
    served: Served, console: Engine, http: httpx.AsyncClient
) -> None:
    token = await waiting_review(console)
    url = served.link(token)
    page = await http.get(url)
    fields = {"decision": "approve", "seen": form(page.text)["seen"], "edits": '{"0": {}}'}
    response = await http.post(url, data=fields)
    assert response.status_code == 400
    assert "takes no edits fields" in response.text
    assert (await console.get_token(token)).status == TokenStatus.WAITING


async def test_a_client_that_keeps_sending_bad_signatures_is_slowed_down(
    served: Served, console: Engine, http: httpx.AsyncClient
) -> None:
    token = await waiting_review(console)
    url = served.link(token)
    forged = with_query(url, sig="0" * 64)
    for attempt in range(10):
        assert (await http.get(forged)).status_code == 403, attempt
    blocked = await http.get(forged)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert "Too many bad links" in blocked.text
    assert (await http.get(url)).status_code == 429  # a good link too, from that address


async def test_a_rule_that_needs_two_approvals_counts_the_worker_once(
    served: Served, console: Engine, http: httpx.AsyncClient, shop: Path
) -> None:
    await console.apply_policy(TWO_APPROVALS)
    token = await waiting_review(console)
    first = await decide(http, served.link(token, "ana"))
    assert first.status_code == 200
    assert "1 of 2 approvals so far" in first.text
    second = await decide(http, served.link(token, "bob"))
    assert second.status_code == 403
    assert "The store refused this decision" in second.text
    assert f"{console.actor} already approved it at " in second.text
    assert "each reviewer decides once" in second.text
    assert refunds(shop, 1042) == []
    waiting = await console.get_token(token)
    assert waiting.status == TokenStatus.WAITING
    assert [v.output["reviewer"] for v in waiting.verdicts] == ["via link by ana"]


async def test_a_worker_stops_serving_when_it_stops(
    served: Served, http: httpx.AsyncClient
) -> None:
    assert await served.worker.stop() == 0
    async with httpx.AsyncClient(timeout=WAIT) as fresh:
        try:
            await fresh.get(served.base + "/")
        except httpx.ConnectError:
            return
    raise AssertionError("the link server still answers after the worker stopped")
