"""The page of a link rendered by a real browser engine (Debian's Chromium, headless): the diff
is in the document it builds, with no script run."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from hitl_desktop.engine import Engine
from tests.cli.test_worker import WAIT
from tests.links.conftest import Served, waiting_review

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (make sysdeps installs Debian's chromium)",
)


async def chromium(*argv: str) -> str:
    """Run headless Chromium with *argv*; its standard output."""
    assert CHROMIUM is not None
    flags = ["--headless", "--disable-gpu", "--no-first-run", "--disable-extensions"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *flags, *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(WAIT):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")
    return out.decode()


async def test_chromium_renders_the_review_with_its_diff(served: Served, console: Engine) -> None:
    token = await waiting_review(console)
    dom = await chromium("--dump-dom", served.link(token))
    assert "<title>Review " in dom
    assert "Insert into refunds" in dom
    assert '<td class="before"></td><td class="after">20.00</td>' in dom
    assert '<th scope="row">invoice_id</th>' in dom
    assert "Refund $20.00 on invoice INV-001042" in dom
    assert 'value="approve">Approve</button>' in dom
