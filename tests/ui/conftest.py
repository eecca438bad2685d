"""UI fixtures: async tests run on a qasync loop (Qt events are processed during every await),
each with a fresh store and a fresh copy of the demo target, both real SQLite files.

Inside a running coroutine, `qtbot.wait*` cannot be used ("Cannot enter into task"): poll with
`helpers.until()` (asyncio.sleep) instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from hitl_desktop.config import Settings, sqlite_url


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    """Every async test under tests/ui runs on a qasync loop over the one QApplication."""

    def qasync_loop() -> asyncio.AbstractEventLoop:
        app = QApplication.instance() or QApplication([])
        return qasync.QEventLoop(app)

    return {"qasync": qasync_loop}


@pytest.fixture
def target_path(demo_path: Path) -> Path:
    return demo_path


@pytest.fixture
def settings(tmp_path: Path, target_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        store_url=sqlite_url(tmp_path / "runs.db"),
        target_url=sqlite_url(target_path),
        config_dir=tmp_path / "config",
    )
