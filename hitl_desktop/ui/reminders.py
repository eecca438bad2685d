"""Reminders: reviews that waited past their rule's remind_after are announced once each (the
tray, the status bar), saying who else may now decide."""

from __future__ import annotations

import contextlib
import logging

from PySide6.QtCore import QObject, QTimer, Signal

from ..engine import Engine, Overdue
from .records import format_when
from .slots import async_slot

CHECK_EVERY_MS = 30_000

log = logging.getLogger("hitl_desktop.ui")


def overdue_text(review: Overdue, now: float) -> str:
    rule = f" under rule '{review.rule}'" if review.rule else ""
    since = format_when(review.waiting_since.timestamp(), now)
    text = f"A review{rule} has waited since {since} ({review.approvals} of {review.needed})"
    if review.escalate_to:
        text += f"; {', '.join(review.escalate_to)} may now decide too"
    return text


class Reminders(QObject):
    """Looks for overdue reviews every *every_ms* while started; emits ``overdue(run_id,
    message)`` once per review."""

    overdue = Signal(str, str)

    def __init__(
        self, engine: Engine, every_ms: int = CHECK_EVERY_MS, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self._told: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setInterval(every_ms)
        self._timer.timeout.connect(self.check)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @async_slot
    async def check(self) -> None:
        try:
            found = await self.engine.overdue_reviews()
        except Exception as exc:  # the store is away for a moment: the next tick tries again
            log.warning("cannot look for overdue reviews: %s", exc)
            return
        now = self.engine.clock()
        for review in found:
            if review.token_id in self._told or review.run_id is None:
                continue
            self._told.add(review.token_id)
            with contextlib.suppress(RuntimeError):  # the window went away meanwhile
                self.overdue.emit(review.run_id, overdue_text(review, now))
