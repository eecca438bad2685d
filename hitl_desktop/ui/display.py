"""Whether a window can be shown here; no Qt import, so it answers before Qt loads."""

from __future__ import annotations

import sys
from collections.abc import Mapping

NO_DISPLAY = """\
hitl-desktop needs a display, and this session has none (DISPLAY and WAYLAND_DISPLAY are unset).
Run it on a virtual X display:

    xvfb-run -a make demo          (or: xvfb-run -a python -m hitl_desktop --demo)

(Debian: sudo apt-get install xvfb), or set QT_QPA_PLATFORM=offscreen to run it invisibly."""


def display_problem(environ: Mapping[str, str], platform: str = sys.platform) -> str | None:
    """Why a window cannot be shown here, or None: on Linux, no X or Wayland display and no
    explicit Qt platform plugin."""
    if environ.get("QT_QPA_PLATFORM"):
        return None
    if not platform.startswith("linux"):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return NO_DISPLAY
