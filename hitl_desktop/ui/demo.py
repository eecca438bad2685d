"""`--demo`: a demo target database and its own store in the data directory, the offline
proposer, and a handful of sample requests waiting for review within seconds.

The demo keeps to ``<data dir>/demo/`` so it never mixes with a real store. The sample requests
carry idempotency keys: relaunching finds the runs it made last time instead of duplicating
them (delete that directory to start over).
"""

from __future__ import annotations

from dataclasses import replace

from ..agent import (
    DEMO_PROFILE,
    DEMO_REQUESTS,
    ChangeRequest,
    create_demo_db,
    demo_profile,
    request_change,
)
from ..config import DEMO_TARGET, STORE_FILE, Settings, private_dir
from ..engine import Engine, Run
from ..units.urls import sqlite_url


def prepare_demo(settings: Settings) -> Settings:
    """Create the demo target (once) and point the settings at it and at the demo store."""
    folder = settings.demo_dir
    private_dir(folder)
    target = folder / DEMO_TARGET
    if not target.exists():
        create_demo_db(target)
    return replace(
        settings,
        store_url=sqlite_url(folder / STORE_FILE),
        profile=DEMO_PROFILE,
        overridden=settings.overridden | {"profile"},
    )


async def seed_demo(
    engine: Engine, settings: Settings, requests: tuple[str, ...] = DEMO_REQUESTS
) -> list[Run]:
    """Trigger the sample requests (once per demo store: idempotency keys)."""
    profile = demo_profile(settings.demo_dir / DEMO_TARGET)
    runs = []
    for number, text in enumerate(requests, start=1):
        change = ChangeRequest(text, DEMO_PROFILE, settings.token_timeout, profile.target_id)
        runs.append(await request_change(engine, change, idempotency_key=f"demo-{number}"))
    return runs
