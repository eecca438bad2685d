"""Engine events → Qt signals: the only way engine news reaches the widgets.

One task reads `Engine.events()` (which also carries what other processes committed) and emits
them in batches: everything already queued, plus what arrives within `coalesce_s`, goes out as one
`events` signal, so a burst of a thousand paused runs costs the GUI a few updates, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..engine import Engine, Event, EventStream

log = logging.getLogger("hitl_desktop.ui")


class EngineBridge(QObject):
    """Relays an engine's events to the Qt side as `events(list[Event])`."""

    events = Signal(list)
    closed = Signal()

    def __init__(self, engine: Engine, *, coalesce_s: float = 0.03, parent: Any = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.coalesce_s = coalesce_s
        self._stream: EventStream | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Subscribe now (before the engine starts, so nothing is missed) and start relaying."""
        if self._task is not None:
            return
        self._stream = self.engine.events()
        self._task = asyncio.ensure_future(self._pump(self._stream))

    async def stop(self) -> None:
        task, stream = self._task, self._stream
        self._task = self._stream = None
        if stream is not None:
            await stream.aclose()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pump(self, stream: EventStream) -> None:
        try:
            async for event in stream:
                batch: list[Event] = [event]
                self._drain(stream, batch)
                if self.coalesce_s > 0:
                    await asyncio.sleep(self.coalesce_s)
                    self._drain(stream, batch)
                try:
                    self.events.emit(batch)
                except Exception:  # a slot's bug must not stop the relay
                    log.exception("handling engine events failed")
        finally:
            self.closed.emit()

    @staticmethod
    def _drain(stream: EventStream, batch: list[Event]) -> None:
        while True:
            more = stream.get_nowait()
            if more is None:
                return
            batch.append(more)
