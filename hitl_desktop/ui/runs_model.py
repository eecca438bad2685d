"""The runs table: a model of immutable `RunRow`s, newest first, and its sort/filter proxy.

The model never reads a store. `Console` feeds it: `append_page()` for incremental fetching
(the view asks through `canFetchMore` / `fetchMore`, the model passes that on as
`fetch_wanted`), `upsert()` / `remove()` from engine events, `set_details()` for what is read
lazily (the review and the token of rows that are actually painted: `details_wanted`).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from .plain_text import tooltip
from .records import (
    EMPTY_DETAILS,
    RunDetails,
    RunRow,
    format_countdown,
    format_rows,
    format_time,
)

Index = QModelIndex | QPersistentModelIndex

TASK, REQUEST, TABLES, ROWS, WAITING_SINCE, EXPIRES_IN, TAGS, STATUS = range(8)
HEADERS = ("Task", "Request", "Tables", "Rows", "Waiting since", "Expires in", "Tags", "Status")

ROW_ROLE = Qt.ItemDataRole.UserRole + 1
"""The `RunRow` itself."""
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
"""A sortable value that never triggers a lazy read."""
FILTER_ROLE = Qt.ItemDataRole.UserRole + 3
"""The row's searchable text (column 0 only) that never triggers a lazy read."""
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 4

URGENT_S = 300
"""Under this many seconds left, the countdown turns red."""

# Light / dark text colours per state; everything else takes the palette's text colour.
_STATE_COLOURS: dict[str, tuple[str, str]] = {
    "waiting": ("#1864ab", "#74c0fc"),
    "applied": ("#2b8a3e", "#8ce99a"),
    "conflict": ("#c92a2a", "#ffa8a8"),
    "invalid edit": ("#c92a2a", "#ffa8a8"),
    "failed": ("#c92a2a", "#ffa8a8"),
}


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the palette is a dark one (light text on a dark window)."""
    pal = palette if palette is not None else QGuiApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


def _key(row: RunRow) -> tuple[float, str]:
    # Ascending order of this key is the table's order: newest first, ties by id.
    return (-row.created_at, row.id)


class RunsModel(QAbstractTableModel):
    """The runs of one view, newest first; rows are replaced, never mutated."""

    fetch_wanted = Signal()
    """The view scrolled to the end and more runs may exist: fetch the next page."""
    details_wanted = Signal(list)
    """Run ids whose rows were painted without their details (coalesced per event-loop turn)."""

    def __init__(self, clock: Callable[[], float] = time.time, parent: Any = None) -> None:
        super().__init__(parent)
        self._clock = clock
        self._rows: list[RunRow] = []
        self._keys: list[tuple[float, str]] = []
        self._by_id: dict[str, RunRow] = {}
        self._details: dict[str, RunDetails] = {}
        self._leaving: set[str] = set()
        self._pending: set[str] = set()
        self._requested: set[str] = set()
        self._exhausted = False
        self._fetching = False
        self._dark = is_dark()
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(0)
        self._flush.timeout.connect(self._emit_details_wanted)

    # ------------------------------------------------------------ Qt model

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, self._details_for(row), column)
        if role == SORT_ROLE:
            return self._sort_value(row, column)
        if role == FILTER_ROLE:
            return self._filter_text(row)
        if role == ROW_ROLE:
            return row
        if role == RUN_ID_ROLE:
            return row.id
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = self._tooltip(row, column)
            return None if tip is None else tooltip(tip)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (ROWS, EXPIRES_IN):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or self._exhausted or self._fetching:
            return
        self._fetching = True
        self.fetch_wanted.emit()

    # ------------------------------------------------------------ cells

    def _details_for(self, row: RunRow) -> RunDetails:
        found = self._details.get(row.id)
        if found is not None:
            return found
        if row.id not in self._requested:
            self._requested.add(row.id)
            self._pending.add(row.id)
            if not self._flush.isActive():
                self._flush.start()
        return EMPTY_DETAILS

    def _display(self, row: RunRow, details: RunDetails, column: int) -> str:
        if column == TASK:
            return row.task
        if column == REQUEST:
            # A change set is one row, marked with how far its parts got.
            return (
                row.request if not details.change_set else f"{details.change_set} — {row.request}"
            )
        if column == TABLES:
            return ", ".join(details.tables)
        if column == ROWS:
            return format_rows(details.rows, details.ops)
        if column == WAITING_SINCE:
            return format_time(row.updated_at, self._clock()) if row.waiting else ""
        if column == EXPIRES_IN:
            return format_countdown(details.expires_at, self._clock()) if row.waiting else ""
        if column == TAGS:
            return ", ".join(self._tags(row, details))
        return row.state

    @staticmethod
    def _tags(row: RunRow, details: RunDetails) -> list[str]:
        # The task's own tag (request_change tags runs "db-change") and the tables the token is
        # tagged with are in their own columns already.
        shown = {*details.tables, row.task}
        tags = [*row.tags, *details.token_tags]
        return list(dict.fromkeys(t for t in tags if t not in shown))

    def _sort_value(self, row: RunRow, column: int) -> Any:
        details = self._details.get(row.id, EMPTY_DETAILS)
        if column == WAITING_SINCE:
            return row.updated_at if row.waiting else 0.0
        if column == EXPIRES_IN:
            return details.expires_at or 0.0
        if column == ROWS:
            return details.rows or 0
        if column == TASK:
            return row.task
        if column == REQUEST:
            return row.request.lower()
        return self._display(row, details, column).lower()

    def _filter_text(self, row: RunRow) -> str:
        details = self._details.get(row.id, EMPTY_DETAILS)
        parts = [row.id, row.task, row.request, row.state, *row.tags, *details.tables]
        if details.summary:
            parts.append(details.summary)
        if details.change_set:
            parts += ["change set", details.change_set]
        return "\n".join(parts)

    def _tooltip(self, row: RunRow, column: int) -> str | None:
        details = self._details.get(row.id, EMPTY_DETAILS)
        if column == REQUEST:
            lines = [row.request]
            if details.summary and details.summary != row.request:
                lines.append(f"Agent: {details.summary}")
            if details.change_set:
                lines.append(f"Change set, each part decided on its own ({details.change_set})")
            return "\n".join(lines)
        if column == STATUS:
            if row.outcome is not None:
                return row.outcome.message or row.state
            if row.error:
                return row.error
            return f"run {row.id}"
        if column == ROWS and details.ops:
            return ", ".join(f"{n} {op}" for op, n in details.ops)
        if column == WAITING_SINCE and row.waiting:
            return f"waiting since {format_time(row.updated_at, 0)} (run {row.id})"
        return None

    def _foreground(self, row: RunRow, column: int) -> QColor | None:
        if row.id in self._leaving:
            return QGuiApplication.palette().color(
                QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text
            )
        pair: tuple[str, str] | None = None
        if column == STATUS:
            pair = _STATE_COLOURS.get(row.state)
        elif column == EXPIRES_IN and row.waiting:
            details = self._details.get(row.id)
            expires_at = None if details is None else details.expires_at
            if expires_at is not None and expires_at - self._clock() < URGENT_S:
                pair = _STATE_COLOURS["failed"]
        return None if pair is None else QColor(pair[1] if self._dark else pair[0])

    def _emit_details_wanted(self) -> None:
        ids = [i for i in self._pending if i in self._by_id]
        self._pending.clear()
        if ids:
            self.details_wanted.emit(ids)

    # ------------------------------------------------------------ feeding

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    @property
    def oldest(self) -> float | None:
        """created_at of the oldest loaded row: the paging cursor."""
        return self._rows[-1].created_at if self._rows else None

    def covers(self, row: RunRow) -> bool:
        """True when *row* belongs in the loaded range (newer than the paging cursor)."""
        oldest = self.oldest
        return self._exhausted or oldest is None or row.created_at >= oldest

    def row_of(self, run_id: str) -> int:
        """The row of a run, or -1."""
        row = self._by_id.get(run_id)
        if row is None:
            return -1
        return bisect.bisect_left(self._keys, _key(row))

    def get(self, run_id: str) -> RunRow | None:
        return self._by_id.get(run_id)

    def rows(self) -> list[RunRow]:
        return list(self._rows)

    def details(self, run_id: str) -> RunDetails | None:
        return self._details.get(run_id)

    def is_leaving(self, run_id: str) -> bool:
        return run_id in self._leaving

    def set_dark(self, dark: bool) -> None:
        if dark != self._dark:
            self._dark = dark
            self._all_changed()

    def reset(self, rows: Sequence[RunRow] = (), *, exhausted: bool = False) -> None:
        """Replace every row (a new view); details already read are kept."""
        self.beginResetModel()
        ordered = sorted(rows, key=_key)
        self._rows = ordered
        self._keys = [_key(r) for r in ordered]
        self._by_id = {r.id: r for r in ordered}
        self._leaving.clear()
        self._exhausted = exhausted
        self._fetching = False
        self.endResetModel()

    def append_page(self, rows: Iterable[RunRow], *, exhausted: bool) -> int:
        """Add the next (older) page; rows already present are skipped. Returns rows added."""
        fresh = sorted((r for r in rows if r.id not in self._by_id), key=_key)
        self._fetching = False
        self._exhausted = exhausted
        if not fresh:
            return 0
        if self._keys and _key(fresh[0]) < self._keys[-1]:
            # Out of order (a tie, a clock step): insert one by one.
            self.upsert(fresh)
            return len(fresh)
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
        self._rows.extend(fresh)
        self._keys.extend(_key(r) for r in fresh)
        self._by_id.update((r.id, r) for r in fresh)
        self.endInsertRows()
        return len(fresh)

    def fetch_failed(self) -> None:
        self._fetching = False

    def upsert(self, rows: Iterable[RunRow]) -> None:
        """Insert new rows at their place, replace known ones (same run id)."""
        new: list[RunRow] = []
        for row in rows:
            old = self._by_id.get(row.id)
            if old is None:
                new.append(row)
                continue
            self._leaving.discard(row.id)
            at = bisect.bisect_left(self._keys, _key(old))
            if _key(old) != _key(row):  # created_at never changes; guard anyway
                self._remove_at(at)
                new.append(row)
                continue
            self._rows[at] = row
            self._by_id[row.id] = row
            if old.status != row.status or old.token_id != row.token_id:
                self._details.pop(row.id, None)
                self._requested.discard(row.id)
            self.dataChanged.emit(self.index(at, 0), self.index(at, len(HEADERS) - 1))
        self._insert_sorted(new)

    def _insert_sorted(self, rows: list[RunRow]) -> None:
        rows.sort(key=_key)
        i = 0
        while i < len(rows):
            at = bisect.bisect_left(self._keys, _key(rows[i]))
            # A block of consecutive new rows that all land at the same place: one insert.
            j = i + 1
            limit = self._keys[at] if at < len(self._keys) else None
            while j < len(rows) and (limit is None or _key(rows[j]) < limit):
                j += 1
            block = rows[i:j]
            self.beginInsertRows(QModelIndex(), at, at + len(block) - 1)
            self._rows[at:at] = block
            self._keys[at:at] = [_key(r) for r in block]
            self._by_id.update((r.id, r) for r in block)
            self.endInsertRows()
            i = j

    def remove(self, run_ids: Iterable[str]) -> None:
        """Remove these runs' rows (unknown ids are ignored)."""
        rows = sorted((r for r in (self.row_of(i) for i in set(run_ids)) if r >= 0), reverse=True)
        # Contiguous ranges, from the bottom up, one removal each.
        while rows:
            last = first = rows.pop(0)
            while rows and rows[0] == first - 1:
                first = rows.pop(0)
            self.beginRemoveRows(QModelIndex(), first, last)
            for row in self._rows[first : last + 1]:
                self._by_id.pop(row.id, None)
                self._leaving.discard(row.id)
            del self._rows[first : last + 1]
            del self._keys[first : last + 1]
            self.endRemoveRows()

    def _remove_at(self, at: int) -> None:
        self.remove([self._rows[at].id])

    def mark_leaving(self, run_id: str) -> None:
        """Grey the row out: it no longer belongs to the view and goes away shortly."""
        at = self.row_of(run_id)
        if at >= 0 and run_id not in self._leaving:
            self._leaving.add(run_id)
            self.dataChanged.emit(self.index(at, 0), self.index(at, len(HEADERS) - 1))

    def set_details(self, details: dict[str, RunDetails]) -> None:
        """Details read for these runs; repaints their rows."""
        for run_id, found in details.items():
            self._details[run_id] = found
            self._requested.add(run_id)
            at = self.row_of(run_id)
            if at >= 0:
                self.dataChanged.emit(self.index(at, 0), self.index(at, len(HEADERS) - 1))

    def forget_details(self, run_id: str) -> None:
        """Read this run's details again next time its row is painted."""
        self._details.pop(run_id, None)
        self._requested.discard(run_id)

    def _all_changed(self) -> None:
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, len(HEADERS) - 1)
            )


class RunsProxy(QSortFilterProxyModel):
    """Sorting and the filter box; sorts and filters by values that never trigger reads."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterRole(FILTER_ROLE)
        self.setFilterKeyColumn(0)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def run_id(self, row: int) -> str | None:
        if row < 0 or row >= self.rowCount():
            return None
        value = self.data(self.index(row, 0), RUN_ID_ROLE)
        return None if value is None else str(value)

    def row_of(self, run_id: str) -> int:
        source = self.sourceModel()
        if not isinstance(source, RunsModel):
            return -1
        at = source.row_of(run_id)
        if at < 0:
            return -1
        return self.mapFromSource(source.index(at, 0)).row()
