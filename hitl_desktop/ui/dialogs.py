"""The console's dialogs: reject reason, edit & approve, confirmations, new request.

Dialogs are shown with `ask()`, which opens them window-modal and awaits their answer: never
`exec()` inside a coroutine (a nested event loop there would run other asyncio tasks inside this
one's step, "Cannot enter into task").

Every text a dialog shows that came from the model or a run (a summary, a table or column name,
a value, a target) is shown as plain text (see `plain_text`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..agent import Diff, Edit, Review, value_text
from .diff_view import change_title
from .plain_text import plain_box, plain_label


async def ask(dialog: QDialog) -> int:
    """Open *dialog* (window-modal) and wait for its result without blocking the loop.

    A message box is shown as plain text whoever built it: its text often quotes the model.
    """
    if isinstance(dialog, QMessageBox):
        plain_box(dialog)
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not future.done():
            future.set_result(result)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        return await future
    finally:
        dialog.finished.disconnect(finished)
        dialog.deleteLater()
        parent = dialog.parentWidget()
        if parent is not None:  # keyboard shortcuts need the window active again
            parent.activateWindow()


def confirmation(review: Review) -> str | None:
    """Why approving *review* deserves a second look (deletes, several rows), or None."""
    deletes = [d for d in review.diffs if d.op == "delete"]
    lines = []
    if deletes:
        tables = ", ".join(sorted({d.table for d in deletes}))
        lines.append(f"It deletes {len(deletes)} row{'s' if len(deletes) != 1 else ''} ({tables}).")
    if review.rows > 1:
        lines.append(f"It writes {review.rows} row changes in one transaction.")
    if not lines:
        return None
    return " ".join(lines)


def confirm_dialog(parent: QWidget | None, title: str, text: str, ok: str) -> QMessageBox:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(text)
    plain_box(box)
    box.setStandardButtons(QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    button = box.button(QMessageBox.StandardButton.Ok)
    button.setText(ok)
    box.setObjectName("confirmDialog")
    return box


class RejectDialog(QDialog):
    """Reject, with an optional reason (stored as the decision's comment)."""

    def __init__(self, summary: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reject")
        self.setObjectName("rejectDialog")
        label = plain_label(QLabel(f"Reject “{summary}”? Nothing will be written."))
        label.setWordWrap(True)
        self.reason_edit = QPlainTextEdit()
        self.reason_edit.setPlaceholderText("Reason (optional), shown to the requester")
        self.reason_edit.setTabChangesFocus(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Reject")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.reason_edit)
        layout.addWidget(buttons)
        self.resize(460, 220)

    def reason(self) -> str | None:
        return self.reason_edit.toPlainText().strip() or None


def parse_edit(text: str, original: Any) -> Any:
    """The typed value of an edited field, guided by the proposal's value (the task validates
    it again; a value it cannot use ends the run as an invalid edit, nothing written)."""
    if original is None:
        return None if text.strip() in ("", "null") else text
    if isinstance(original, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        return text
    if isinstance(original, int):
        try:
            return int(text.strip())
        except ValueError:
            return text
    if isinstance(original, float):
        try:
            return float(text.strip())
        except ValueError:
            return text
    return text


class EditDialog(QDialog):
    """The proposed values of every insert and update, editable; deletes are shown, not edited."""

    def __init__(self, review: Review, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit & approve")
        self.setObjectName("editDialog")
        self.review = review
        self.fields: dict[tuple[int, str], tuple[QLineEdit, Any]] = {}
        intro = QLabel(
            "Change the values to write, then approve. The agent's checks run again on your "
            "values; if they fail, nothing is written and the run says why."
        )
        intro.setWordWrap(True)
        body = QWidget()
        body_layout = QVBoxLayout(body)
        for diff in review.diffs:
            body_layout.addWidget(self._change_box(diff))
        body_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Approve with edits")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        self.resize(620, 520)

    def _change_box(self, diff: Diff) -> QGroupBox:
        box = QGroupBox(change_title(diff))
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        if diff.op == "delete" or diff.after is None:
            form.addRow(QLabel("A deleted row has no values to edit."))
            return box
        for name, value in diff.after.items():
            edit = QLineEdit("" if value is None else value_text(value))
            edit.setObjectName(f"edit_{diff.index}_{name}")
            if value is None:
                edit.setPlaceholderText("null")
            if name in diff.key:
                edit.setReadOnly(True)
                edit.setToolTip("The row's key cannot be edited")
            if name in diff.changed:
                edit.setStyleSheet("font-weight: bold")
            self.fields[(diff.index, name)] = (edit, value)
            form.addRow(plain_label(QLabel(name)), edit)
        return box

    def field(self, index: int, name: str) -> QLineEdit:
        return self.fields[(index, name)][0]

    def edits(self) -> tuple[Edit, ...]:
        """The fields the reviewer changed, per change index (only those)."""
        by_index: dict[int, dict[str, Any]] = {}
        for (index, name), (edit, original) in self.fields.items():
            shown = "" if original is None else value_text(original)
            if edit.isReadOnly() or edit.text() == shown:
                continue
            by_index.setdefault(index, {})[name] = parse_edit(edit.text(), original)
        return tuple(Edit(index, values) for index, values in sorted(by_index.items()))


class NewRequestDialog(QDialog):
    """Type a request for the agent (the offline demo proposer knows a few shapes)."""

    def __init__(
        self,
        target: str | None,
        proposer: str,
        examples: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New request")
        self.setObjectName("newRequestDialog")
        where = target or "no target database set (see Settings)"
        info = plain_label(QLabel(f"Target: {where}\nProposer: {proposer}"))
        info.setWordWrap(True)
        info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text_edit = QPlainTextEdit()
        self.text_edit.setPlaceholderText("e.g. Refund $20 on invoice 1042")
        self.text_edit.setTabChangesFocus(True)
        self.examples = QComboBox()
        self.examples.addItem("Examples…")
        self.examples.addItems(list(examples))
        self.examples.setVisible(bool(examples))
        self.examples.activated.connect(self._use_example)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Request")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.text_edit.textChanged.connect(self._update)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("What should change in the database?"))
        layout.addWidget(self.text_edit, 1)
        layout.addWidget(self.examples)
        layout.addWidget(info)
        layout.addWidget(self.buttons)
        self._update()
        self.resize(520, 260)

    def _use_example(self, index: int) -> None:
        if index > 0:
            self.text_edit.setPlainText(self.examples.itemText(index))

    def _update(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(self.text()))

    def text(self) -> str:
        return self.text_edit.toPlainText().strip()
