"""The console's paging and views against a real store: first page at once, more on demand,
views the engine cannot filter, and events that arrive for runs not loaded yet."""

from __future__ import annotations

import itertools
from typing import Any

from hitl_desktop.config import Settings
from hitl_desktop.engine import Engine, RunContext, task, wait
from hitl_desktop.ui.records import View

from .helpers import running_console, until


@task("bench-wait")
async def bench_wait(ctx: RunContext, payload: Any) -> dict[str, Any]:
    token = await wait.create_token(timeout="1h", tags=["bench"])
    result = await wait.for_token(token)
    return {"ok": result.ok}


async def fill(url: str, n: int) -> None:
    """*n* runs of a task the console does not know: they stay QUEUED, one millisecond apart."""
    ticks = itertools.count()
    engine = Engine(
        url,
        tasks=[bench_wait],
        clock=lambda: 1_700_000_000 + next(ticks) / 1000,
        synchronous="OFF",  # a fixture, not a durability test
    )
    await engine.open()
    for i in range(n):
        await engine.trigger("bench-wait", {"request": f"run {i}"})
    await engine.stop()


async def test_the_table_pages_in_as_the_view_asks_for_more(settings: Settings) -> None:
    await fill(settings.store_url, 450)
    async with running_console(settings) as app:
        assert app.model.rowCount() == 0  # Waiting: none of them waits
        app.window.set_view(View.ALL)
        await app.console.idle()
        assert app.model.rowCount() == 200 and app.model.canFetchMore()
        assert app.model.rows()[0].request == "run 449"  # newest first
        app.model.fetchMore()  # what the view does when scrolled to the end
        await app.console.idle()
        assert app.model.rowCount() == 400
        app.window.table.scrollToBottom()
        await until(lambda: app.model.rowCount() == 450, what="the last page")
        await app.console.idle()
        assert not app.model.canFetchMore()
        assert len({r.id for r in app.model.rows()}) == 450
        # A view the engine cannot filter scans and finds nothing, without looping forever.
        app.window.set_view(View.APPLIED)
        await until(lambda: not app.model.canFetchMore(), what="the scan to end")
        assert app.model.rowCount() == 0


async def test_an_event_for_a_run_below_the_loaded_page_waits_for_its_page(
    settings: Settings,
) -> None:
    await fill(settings.store_url, 250)
    async with running_console(settings) as app:
        app.window.set_view(View.ALL)
        await app.console.idle()
        oldest = await app.engine.list_runs(limit=1, before=1_700_000_000.010)
        assert oldest and app.model.get(oldest[0].id) is None
        await app.console.refresh([oldest[0].id])  # e.g. it was canceled elsewhere
        assert app.model.get(oldest[0].id) is None and app.model.rowCount() == 200
        newest = (await app.engine.list_runs(limit=1))[0]
        await app.engine.cancel(newest.id, "test")
        await until(
            lambda: (r := app.model.get(newest.id)) is not None and r.state == "canceled",
            what="the canceled run's row",
        )
