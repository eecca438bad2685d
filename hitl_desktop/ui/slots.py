"""`async_slot`: qasync's `asyncSlot()` with its type kept (mypy sees the decorated method).

Use it on methods of QObject subclasses only: on a plain function connected to a signal, qasync
raises "asyncSlot was not callable from Signal" (PySide6 6.8 to 6.12).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from qasync import asyncSlot

F = TypeVar("F", bound=Callable[..., Any])


def async_slot(fn: F) -> F:
    """Run the coroutine method as a task on the qasync loop when the signal fires."""
    return cast(F, asyncSlot()(fn))
