"""What the proposal relied on: the rows the proposer read, beside the diff of what it writes.

A refund is right only if the invoice is paid and not refunded already; the diff shows the refund,
this list shows the invoice's amount and status and the refunds made on it so far, so a reviewer
need not take the rationale's word for them. Each read is a heading (``refunds where
invoice_id=74: 2 rows``) over a line per row with the fields that mattered (`agent.relied_on`).
The rows are data from the target database: shown as plain text, never rich text.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..agent import Review, relied_on
from .plain_text import plain_label, tooltip


class ReliedOnView(QWidget):
    """The read set of one review, as headings and row lines."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = plain_label(QLabel("Relied on"))
        self.title.setObjectName("sectionTitle")
        self.title.setToolTip(
            tooltip(
                "The rows the agent read to make this proposal. If one changes before the "
                "change is written, nothing is written (a conflict)."
            )
        )
        self.tree = QTreeWidget()
        self.tree.setObjectName("reliedOn")
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setItemsExpandable(False)
        self.tree.setIndentation(18)
        self.tree.setUniformRowHeights(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setAccessibleName("Relied on")
        self.tree.setAccessibleDescription(
            "The rows the agent read and relied on: each read, then the fields of its rows"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.tree, 1)
        self._lines: list[str] = []

    def set_review(self, review: Review | None) -> None:
        self.tree.clear()
        self._lines = []
        if review is None:
            self.title.setText("Relied on")
            return
        shown = relied_on(review)
        n = len(shown)
        self.title.setText(f"Relied on: {n} read{'s' if n != 1 else ''}" if n else "Relied on")
        if not shown:
            self.tree.addTopLevelItem(QTreeWidgetItem(["No rows read"]))
            self._lines.append("No rows read")
            return
        for item in shown:
            head = QTreeWidgetItem([item.heading])
            font = head.font(0)
            font.setBold(True)
            head.setFont(0, font)
            head.setToolTip(0, tooltip(item.heading))
            self._lines.append(item.heading)
            for line in item.lines():
                row = QTreeWidgetItem(head, [line])
                row.setToolTip(0, tooltip(line))
                self._lines.append(f"    {line}")
            self.tree.addTopLevelItem(head)
            head.setExpanded(True)

    def text(self) -> str:
        """Everything shown, one line per item, rows indented (for tests and copying)."""
        return "\n".join(self._lines)
