"""Where the app's resource files (icons) are, in a checkout and in a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["resource_path"]


def resource_path(name: str = "") -> Path:
    """The path of resource *name*: under ``sys._MEIPASS/resources`` when frozen by PyInstaller,
    else under the repository's top-level ``resources/`` directory.

    The only place ``sys._MEIPASS`` is read; the PyInstaller spec copies ``resources/`` to
    ``resources`` in the bundle.
    """
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        root = Path(bundle) / "resources"
    else:
        root = Path(__file__).resolve().parent.parent / "resources"
    return root / name if name else root
