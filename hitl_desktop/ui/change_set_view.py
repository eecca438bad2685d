"""A change set in the review pane: its parts, one line each (number and name, status, rule),
the one the reviewer picks being the part whose diff is shown and whose token Approve and Reject
decide.

The parts come from `agent.read_change_set` (through `RunView.change_set`); nothing here works
out a part's status or token.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..agent import ChangeSet, PartState, Rule
from .plain_text import plain_label, tooltip
from .records import part_status, set_progress

NUMBER, NAME, STATUS, RULE = range(4)
HEADERS = ("#", "Part", "Status", "Rule")
VISIBLE_PARTS = 5
"""Parts shown without scrolling; a longer set scrolls in its list."""
NUMBER_ROLE = Qt.ItemDataRole.UserRole + 1

APPLY_TEXT = {
    "all": "written together once every part is approved; one rejection rejects the set",
    "each": "each part written on its own as soon as it is approved",
}


def rule_text(part: PartState) -> str:
    """The part's policy rule in a few words: "'big refunds': 2 approvals by finance"."""
    data = part.review.rule
    if data is None:
        return "no rule: one approval"
    rule = Rule.from_json(data)
    if rule.auto_approve:
        return f"'{rule.name}': approved by the rule"
    plural = "approval" if rule.approvals == 1 else "approvals"
    who = f" by {', '.join(rule.approvers)}" if rule.approvers else ""
    return f"'{rule.name}': {rule.approvals} {plural}{who}"


def heading_text(found: ChangeSet) -> str:
    """ "Change set of 2 parts (set: 1 of 2 approved)"."""
    return f"Change set of {len(found.parts)} parts ({set_progress(found)})"


def note_text(found: ChangeSet) -> str | None:
    """What the parts decided so far mean for the others, when it is not the obvious: "Part 1
    was rejected: nothing of this change set will be written…"."""
    refused = [p for p in found.parts if p.status in ("rejected", "expired")]
    if found.apply == "all" and refused and found.waiting():
        first = refused[0]
        return (
            f"Part {first.number} was {first.status}: nothing of this change set will be "
            "written. The run ends once the other parts are decided or expire."
        )
    return None


class PartsView(QWidget):
    """The parts of one change set; `part_chosen` says which one the reviewer picked."""

    part_chosen = Signal(int)
    """The number (1-based) of the part picked in the list."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.found: ChangeSet | None = None
        self._filling = False
        # One line, whatever the width (the full text is its tooltip): a wrapped line would
        # take height the splitter above does not know of, and clip the list.
        self.heading = plain_label(QLabel(""))
        self.heading.setObjectName("sectionTitle")
        self.heading.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.list = QTreeWidget()
        self.list.setObjectName("changeSetParts")
        self.list.setColumnCount(len(HEADERS))
        self.list.setHeaderLabels(list(HEADERS))
        self.list.setRootIsDecorated(False)
        self.list.setItemsExpandable(False)
        self.list.setUniformRowHeights(True)
        self.list.setAllColumnsShowFocus(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.list.setAccessibleName("Change set parts")
        self.list.setAccessibleDescription(
            "The parts of this change set, each decided on its own: pick one with the arrow "
            "keys to see its changes; A approves it, R rejects it"
        )
        self.list.currentItemChanged.connect(self._on_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addWidget(self.heading)
        layout.addWidget(self.list)
        self.set_change_set(None, None)

    @property
    def current(self) -> int | None:
        """The number of the part picked, if any."""
        item = self.list.currentItem()
        return None if item is None else int(item.data(NUMBER, NUMBER_ROLE))

    def set_change_set(self, found: ChangeSet | None, current: int | None) -> None:
        """Show *found*'s parts (hide the list for a run of one review), part *current* picked."""
        self.found = found
        self.setVisible(found is not None)
        self._filling = True
        try:
            self.list.clear()
            if found is None:
                return
            self.heading.setText(heading_text(found))
            self.heading.setToolTip(tooltip(f"{heading_text(found)}: {APPLY_TEXT[found.apply]}"))
            for part in found.parts:
                self.list.addTopLevelItem(self._item(part))
            self._fit()
            if current is not None:
                self.choose(current)
        finally:
            self._filling = False

    def choose(self, number: int) -> None:
        """Pick part *number* (as the reviewer would)."""
        item = self.list.topLevelItem(number - 1)
        if item is not None:
            self.list.setCurrentItem(item)

    def _item(self, part: PartState) -> QTreeWidgetItem:
        status = part_status(part)
        item = QTreeWidgetItem([str(part.number), part.name, status, rule_text(part)])
        item.setData(NUMBER, NUMBER_ROLE, part.number)
        item.setTextAlignment(NUMBER, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lines = [f"Part {part.number}: {part.name}", status]
        if part.outcome is not None and part.outcome.message:
            lines.append(part.outcome.message)
        for column in range(len(HEADERS)):
            item.setToolTip(column, tooltip("\n".join(lines)))
        if part.status == "waiting":
            font = item.font(NAME)
            font.setBold(True)
            item.setFont(NAME, font)
        return item

    def _fit(self) -> None:
        """As tall as its parts (up to `VISIBLE_PARTS`), so the diff keeps the rest; the
        number, status and rule as wide as their texts, with a gap between them."""
        gap = self.list.fontMetrics().averageCharWidth() * 2
        for column in (NUMBER, STATUS, RULE):
            self.list.resizeColumnToContents(column)
            self.list.setColumnWidth(column, self.list.columnWidth(column) + gap)
        rows = min(self.list.topLevelItemCount(), VISIBLE_PARTS)
        row = max(self.list.sizeHintForRow(0), self.list.fontMetrics().height())
        header = self.list.header().sizeHint().height()
        frame = self.list.frameWidth() * 2
        self.list.setFixedHeight(header + rows * row + frame)

    def _on_current(self, current: QTreeWidgetItem | None, _previous: object) -> None:
        if current is not None and not self._filling:
            self.part_chosen.emit(int(current.data(NUMBER, NUMBER_ROLE)))
