"""The `shop` fixture the worker and link tests share: a profile `shop` on the demo target,
proposed offline, added with `hitl profile add` to this machine's settings (the test's own
config dir: each module's autouse `isolated` fixture points HITL_CONFIG_DIR there first).

A plain module, not a conftest: a test module takes it with ``from tests.shop import shop``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitl_desktop.cli import main


@pytest.fixture
def shop(demo_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A profile `shop` on the demo target (a fresh copy per test), proposed offline."""
    assert main(["profile", "add", "shop", "--target", str(demo_path)]) == 0
    capsys.readouterr()
    return demo_path
