"""Signed links to the parts of a change set, through real HTTP against a `hitl worker --http`
process: a part's link shows that part alone and decides it through `Engine.decide`; the token
the run waits on for all its parts is no review of its own, and no link to it is served."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from hitl_desktop.agent import DEMO_CHANGE_SET, read_change_set, request_change
from hitl_desktop.application import change_request
from hitl_desktop.config import load_settings
from hitl_desktop.engine import Engine, RunStatus, TokenStatus
from tests.cli.test_worker import WAIT
from tests.links.conftest import Served
from tests.links.test_http import decide, form

REFUND = "Refund $20 on invoice 1042"
PAID = "Mark invoice 4854 as paid"


def written(target: Path) -> tuple[list[Any], list[Any]]:
    """The refunds of invoice 1042 and the status of invoice 4854, as the target holds them."""
    with sqlite3.connect(target) as conn:
        refunds = conn.execute(
            "select amount, status from refunds where invoice_id = 1042"
        ).fetchall()
        invoice = conn.execute("select status from invoices where id = 4854").fetchall()
    return refunds, invoice


async def waiting_set(console: Engine, apply: str = "all") -> tuple[str, str, list[str]]:
    """Request the demo's two-part change set on `shop`: (run id, the token the run waits on,
    each part's token) once the worker made it wait."""
    change = change_request(load_settings(), DEMO_CHANGE_SET, profile="shop")
    run = await request_change(console, replace(change, apply=apply))  # type: ignore[arg-type]
    run = await console.wait_for(run.id, [RunStatus.WAITING, RunStatus.FAILED], timeout=WAIT)
    assert run.status == RunStatus.WAITING, run.error
    assert run.waiting_token_id is not None
    found = await read_change_set(console, run.id)
    assert found is not None
    assert [p.name for p in found.parts] == [REFUND, PAID]
    parts = [p.token_id for p in found.parts]
    assert None not in parts and run.waiting_token_id not in parts
    return run.id, run.waiting_token_id, [str(p) for p in parts]


async def test_a_parts_link_shows_that_part_alone_with_the_sets_request(
    served: Served, console: Engine, http: httpx.AsyncClient
) -> None:
    run_id, _, (first, second) = await waiting_set(console)
    page = (await http.get(served.link(first))).text
    assert "<h1>Review: part 1 of 2 of a change to " in page
    assert "<h2>Part 1 of 2</h2>" in page and REFUND in page
    assert DEMO_CHANGE_SET in page  # the set's request, as the part's context
    assert "this link decides part 1 only" in page
    assert "Nothing is written until every part is approved" in page
    assert "Insert into refunds" in page
    assert "invoices" not in page and PAID not in page  # part 2's diff and name
    found = await read_change_set(console, run_id)
    assert found is not None
    assert form(page)["seen"] == found.parts[0].review.diff_hash

    page = (await http.get(served.link(second))).text
    assert "<h1>Review: part 2 of 2 of a change to " in page and PAID in page
    assert "Update invoices" in page and "Insert into refunds" not in page
    assert form(page)["seen"] == found.parts[1].review.diff_hash


async def test_approving_each_part_through_its_link_writes_the_set_once(
    served: Served, console: Engine, http: httpx.AsyncClient, shop: Path
) -> None:
    run_id, waits_on, (first, second) = await waiting_set(console)
    response = await decide(http, served.link(first, "Ana Lima"))
    assert response.status_code == 200, response.text
    assert "<h1>Part 1 of 2 approved</h1>" in response.text
    assert f"The change set waits for part 2 &#x27;{PAID}&#x27; before anything" in response.text
    decided = await console.get_token(first)
    assert decided.status == TokenStatus.COMPLETED
    assert decided.output["reviewer"] == "via link by Ana Lima"
    assert decided.output["link"]["for"] == "Ana Lima"
    assert (await console.get_token(second)).status == TokenStatus.WAITING
    assert (await console.get_run(run_id)).status == RunStatus.WAITING
    assert (await console.get_token(waits_on)).status == TokenStatus.WAITING
    assert written(shop) == ([], [("open",)])
    line = await served.worker.until(lambda line: f"(token {first})" in line)
    assert f"decided: approve by {console.actor} via link by Ana Lima (token {first})" in line

    response = await decide(http, served.link(second, "Bo"))
    assert response.status_code == 200, response.text
    assert "<h1>Approved</h1>" in response.text
    assert "applied the change set&#x27;s 2 parts together (2 row change(s))" in response.text
    assert written(shop) == ([(20, "pending")], [("paid",)])
    run = await console.get_run(run_id)
    assert run.status == RunStatus.COMPLETED
    assert [p["outcome"]["outcome"] for p in run.output["parts"]] == ["applied", "applied"]

    again = await http.get(served.link(first))  # a part decided stays decided
    assert again.status_code == 409 and "already approved by via link by Ana Lima" in again.text
    assert written(shop) == ([(20, "pending")], [("paid",)])


async def test_with_apply_each_a_parts_link_answers_once_that_part_is_written(
    served: Served, console: Engine, http: httpx.AsyncClient, shop: Path
) -> None:
    run_id, _, (first, second) = await waiting_set(console, apply="each")
    page = (await http.get(served.link(second))).text
    assert "Each part is written on its own as soon as it is approved" in page
    response = await decide(http, served.link(second))
    assert response.status_code == 200, response.text
    assert "<h1>Part 2 of 2 approved</h1>" in response.text
    assert "applied 1 row change(s) after approval by via link by ana" in response.text
    assert f"waiting for part 1 &#x27;{REFUND}&#x27;" in response.text
    assert written(shop) == ([], [("paid",)])
    assert (await console.get_run(run_id)).status == RunStatus.WAITING

    response = await decide(http, served.link(first), "reject", "not this one")
    assert response.status_code == 200, response.text
    assert "<h1>Rejected</h1>" in response.text
    assert (await console.get_run(run_id)).status == RunStatus.COMPLETED
    assert written(shop) == ([], [("paid",)])


async def test_a_link_to_the_token_the_set_waits_on_is_refused_and_names_the_parts(
    served: Served, console: Engine, http: httpx.AsyncClient, shop: Path
) -> None:
    _, waits_on, (first, second) = await waiting_set(console)
    assert waits_on.startswith("grp_")
    url = served.link(waits_on)
    page = await http.get(url)
    assert page.status_code == 404
    assert "Not a part&#x27;s review" in page.text
    assert f"part 1 &#x27;{REFUND}&#x27;: token {first}" in page.text
    assert f"part 2 &#x27;{PAID}&#x27;: token {second}" in page.text
    posted = await http.post(url, data={"decision": "approve", "seen": "0" * 64})
    assert posted.status_code == 404
    for token in (waits_on, first, second):
        assert (await console.get_token(token)).status == TokenStatus.WAITING
    assert written(shop) == ([], [("open",)])
