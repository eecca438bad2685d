"""Helpers for the UI tests: polling from inside a coroutine, finding dialogs, reading SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtWidgets import QApplication, QDialog

from hitl_desktop.config import Settings
from hitl_desktop.ui.app import ConsoleApp

D = TypeVar("D", bound=QDialog)


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll *predicate* (letting Qt and asyncio run) until it is truthy; fail after *timeout*."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def open_dialog(kind: type[D], name: str | None = None) -> D | None:
    """The visible dialog of this kind (and object name), if one is open."""
    for widget in QApplication.topLevelWidgets():
        if (
            isinstance(widget, kind)
            and widget.isVisible()
            and (name is None or widget.objectName() == name)
        ):
            return widget
    return None


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


@asynccontextmanager
async def running_console(settings: Settings, **kw: Any) -> AsyncIterator[ConsoleApp]:
    """The whole console (engine with the db-change task, bridge, window) on *settings*' store.

    A context manager inside the test, not a fixture: pytest-qt processes Qt events between a
    fixture's setup and the test, when the qasync loop is not running, and the engine's
    background tasks must not step then.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    kw = {"reviewer": "tester", "linger_s": 0.0, "tray": False, **kw}
    app = ConsoleApp(settings, **kw)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        for dialog in QApplication.topLevelWidgets():
            if isinstance(dialog, QDialog) and dialog.isVisible():
                dialog.reject()
