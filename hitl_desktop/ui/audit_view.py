"""A run's audit trail: its entries oldest first, and whether the store's whole chain verifies.

A window of its own beside the main one (Run ▸ Audit trail…, Ctrl+U), not a tab of the review
pane: it stays open while the reviewer moves through the runs and follows the selected one, and
the review pane keeps its decision buttons in view. Everything an entry carries is shown as plain
text: the table's cells are never rich text, and tooltips go through `plain_text.tooltip`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..engine import AuditEntry, AuditReport
from .bulk import FAILURES, short_id, why_not
from .console import Console
from .plain_text import plain_label, tooltip
from .records import RunView, format_time

KINDS = {
    "Decision": "Decision",
    "TokenCompleted": "Review completed",
    "TokenTimedOut": "Expired",
    "RunCompleted": "Outcome",
    "RunFailed": "Failed",
    "RunCanceled": "Canceled",
    "PolicyApplied": "Policy applied",
}
COLUMNS = ("When", "Who", "What", "Details", "Hash")
WHEN, WHO, WHAT, DETAILS, HASH = range(len(COLUMNS))
DETAILS_CHARS = 400
HASH_CHARS = 12
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def kind_words(kind: str) -> str:
    """An entry's kind in words: "Decision", "Expired", "Outcome", "Policy applied"…"""
    if kind in KINDS:
        return KINDS[kind]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", kind).split()
    return " ".join([words[0], *(w.lower() for w in words[1:])]) if words else kind


def entry_time(at: str) -> datetime:
    """An entry's ISO 8601 UTC time as an aware datetime."""
    moment = datetime.fromisoformat(at)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def compact(value: Any) -> str:
    """JSON as one short line of plain text: ``verdict: approve, decision: {reviewer: ana}``;
    nulls and empty lists are left out, a 64-hex hash is cut to 12 characters."""
    if isinstance(value, dict):
        parts = [f"{k}: {compact(v)}" for k, v in value.items() if v not in (None, [], {})]
        return ", ".join(parts)
    if isinstance(value, list):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = " ".join(value.split())
        return text[:HASH_CHARS] + "…" if _HEX64.match(text) else text
    return str(value)


def details_text(data: str | None) -> str:
    """An entry's data, compact (nested objects in braces), at most `DETAILS_CHARS`."""
    if data is None:
        return ""
    try:
        value = json.loads(data)
    except ValueError:
        text = " ".join(data.split())
    else:
        if isinstance(value, dict):
            text = ", ".join(
                f"{k}: {{{compact(v)}}}" if isinstance(v, dict) else f"{k}: {compact(v)}"
                for k, v in value.items()
                if v not in (None, [], {})
            )
        else:
            text = compact(value)
    return text if len(text) <= DETAILS_CHARS else text[: DETAILS_CHARS - 1] + "…"


def pretty(data: str | None) -> str:
    if data is None:
        return "(no data)"
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except ValueError:
        return data


def verify_text(report: AuditReport) -> str:
    """ "Audit trail intact: 1,234 entries" or "Audit trail broken at entry 17: …"."""
    if report.broken is None:
        return f"Audit trail intact: {report.entries:,} entr{'y' if report.entries == 1 else 'ies'}"
    return f"Audit trail broken at entry {report.broken.entry_id}: {report.broken.reason}"


def entry_items(entry: AuditEntry, now: float) -> list[QStandardItem]:
    """The table's cells for one entry, each read-only, with its whole text in the tooltip."""
    moment = entry_time(entry.at)
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    cells = [
        (format_time(moment.timestamp(), now), f"{utc}\nentry {entry.id}"),
        (entry.actor, entry.actor),
        (kind_words(entry.kind), entry.kind),
        (details_text(entry.data), pretty(entry.data)),
        (entry.hash[:HASH_CHARS], f"hash {entry.hash}\nafter {entry.prev_hash}"),
    ]
    items = []
    for text, tip in cells:
        item = QStandardItem(text)
        item.setEditable(False)
        item.setToolTip(tooltip(tip))
        items.append(item)
    return items


class AuditView(QDialog):
    """The audit trail of the run selected in the console; refreshed when that run changes."""

    def __init__(
        self,
        console: Console,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Audit trail")
        self.setObjectName("auditView")
        self.setModal(False)
        self.console = console
        self._clock = clock
        self.run_id: str | None = None
        self.entries: list[AuditEntry] = []
        self._generation = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._verified_at = -1  # the newest entry id the last verification saw

        self.title = plain_label(QLabel(""))
        self.title.setObjectName("auditTitle")
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.table = QTableView()
        self.table.setObjectName("auditTable")
        self.table.setModel(self.model)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(DETAILS, QHeaderView.ResizeMode.Stretch)
        for column, width in ((WHEN, 110), (WHO, 100), (WHAT, 110), (HASH, 110)):
            header.resizeSection(column, width)
        self.empty = plain_label(QLabel(""))
        self.empty.setObjectName("auditEmpty")
        self.empty.setVisible(False)
        self.verify_label = plain_label(QLabel("Checking the audit trail…"))
        self.verify_label.setObjectName("auditVerify")
        self.verify_label.setWordWrap(True)
        self.verify_button = QPushButton("Verify again")
        self.verify_button.setAutoDefault(False)
        self.verify_button.setToolTip("Walk the store's whole audit trail and check every hash")
        self.verify_button.clicked.connect(lambda: self._spawn(self._verify()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        foot = QHBoxLayout()
        foot.addWidget(self.verify_label, 1)
        foot.addWidget(self.verify_button)
        foot.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addLayout(foot)
        self.resize(900, 360)
        console.run_view_changed.connect(self._on_run_view)

    # ------------------------------------------------------------ what is shown

    def show_run(self, view: RunView | None) -> None:
        """Show *view*'s run (re-read its entries), or say that no run is selected."""
        self.run_id = None if view is None else view.run.id
        if view is None:
            self.title.setText("No run selected: select one in the runs table")
        else:
            what = view.review.summary if view.review is not None else view.row.request
            self.title.setText(f"Run {short_id(view.run.id)} — {what} ({view.row.state})")
            self.title.setToolTip(tooltip(f"Run {view.run.id}"))
        self._generation += 1
        self._spawn(self._load(self._generation, self.run_id))

    def _on_run_view(self, view: RunView | None) -> None:
        if self.isVisible():
            self.show_run(view)

    def open_for(self, view: RunView | None) -> None:
        """Bring the window up on *view*'s run, and verify the whole chain again."""
        self._verified_at = -1
        self.show()
        self.raise_()
        self.activateWindow()
        self.show_run(view)

    # ------------------------------------------------------------ reading

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no read is in flight (tests)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _load(self, generation: int, run_id: str | None) -> None:
        entries: list[AuditEntry] = []
        error = None
        if run_id is not None:
            try:
                entries = await self.console.audit_entries(run_id)
            except FAILURES as exc:
                error = why_not(exc, self._clock())
        if generation != self._generation:
            return  # another run was selected meanwhile
        self._fill(entries, run_id, error)
        newest = entries[-1].id if entries else 0
        if self._verified_at < 0 or newest > self._verified_at:  # the chain grew
            await self._verify()

    def _fill(self, entries: list[AuditEntry], run_id: str | None, error: str | None) -> None:
        self.entries = entries
        self.model.removeRows(0, self.model.rowCount())
        now = self._clock()
        for entry in entries:
            self.model.appendRow(entry_items(entry, now))
        if error is not None:
            message = f"Cannot read this run's audit entries: {error}"
        elif run_id is not None and not entries:
            message = "This run has no audit entries yet: nothing about it has been recorded."
        else:
            message = ""
        self.empty.setText(message)
        self.empty.setVisible(bool(message))
        self.table.setVisible(bool(entries))

    async def _verify(self) -> None:
        self.verify_button.setEnabled(False)
        self.verify_label.setText("Checking the audit trail…")
        try:
            report = await self.console.verify_audit()
        except FAILURES as exc:
            self.verify_label.setText(
                f"Cannot check the audit trail: {why_not(exc, self._clock())}"
            )
            return
        finally:
            self.verify_button.setEnabled(True)
        self._verified_at = max((e.id for e in self.entries), default=0)
        self.verify_label.setText(verify_text(report))
        bad = report.broken is not None
        self.verify_label.setStyleSheet("color: #c0392b; font-weight: bold" if bad else "")
