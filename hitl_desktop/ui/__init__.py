"""The approval console (PySide6 + qasync only; the engine and the agent never import this).

`ConsoleApp` (in `app`) is the composition root; `main` starts it on a qasync loop. The names
below load on first use, so that `hitl_desktop.ui.display` (no Qt) can say "no display" before
Qt is imported at all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ConsoleApp, main
    from .console import Console
    from .main_window import MainWindow
    from .records import RunDetails, RunRow, RunView, View
    from .runs_model import RunsModel, RunsProxy

_EXPORTS = {
    "Console": "console",
    "ConsoleApp": "app",
    "MainWindow": "main_window",
    "RunDetails": "records",
    "RunRow": "records",
    "RunView": "records",
    "RunsModel": "runs_model",
    "RunsProxy": "runs_model",
    "View": "records",
    "main": "app",
}

__all__ = [
    "Console",
    "ConsoleApp",
    "MainWindow",
    "RunDetails",
    "RunRow",
    "RunView",
    "RunsModel",
    "RunsProxy",
    "View",
    "main",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
