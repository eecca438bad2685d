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
import shiboken6
from PySide6.QtWidgets import QApplication

from hitl_desktop.config import Settings, sqlite_url


class QtLoop(qasync.QEventLoop):  # type: ignore[misc]
    """A qasync loop that lets go of its Qt timers when it closes, on the GUI thread.

    qasync gives every call_soon/call_later a Qt timer on one QObject (`_timer`), and a timer
    stays registered until it fires, even once its handle is cancelled or the loop is closed
    (asyncio timeouts, the engine's deadline timer). The closed loop sits in reference cycles, so
    the cyclic GC frees it later, in whatever thread allocates at that moment: in a later test,
    the store thread or a to_thread worker. ~QObject off the GUI thread cannot unregister the
    timers ("QObject::~QObject: Timers cannot be stopped from another thread") and the GUI
    thread's dispatcher then fires one at freed memory: a segfault in that test's run_forever.
    Deleting the QObject here, in the thread that owns its timers, unregisters them; the GC then
    frees only an empty wrapper.
    """

    def close(self) -> None:
        super().close()
        timer = self._timer
        if shiboken6.isValid(timer):
            shiboken6.delete(timer)


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    """Every async test under tests/ui runs on a qasync loop over the one QApplication."""

    def qasync_loop() -> asyncio.AbstractEventLoop:
        app = QApplication.instance() or QApplication([])
        return QtLoop(app)

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
