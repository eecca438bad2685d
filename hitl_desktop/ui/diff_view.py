"""The diff of a proposal: per row change, a field / before / after grid.

Changed cells are highlighted, inserted and deleted rows are coloured apart, and long text shows
an inline word diff. A toggle shows the raw proposal JSON instead. The grid is rendered as rich
text (selectable, copyable, wraps instead of clipping); the colours follow the palette.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..agent import Diff, Review, value_text
from .plain_text import plain_label
from .runs_model import is_dark

LONG_TEXT = 40
"""Text values at least this long get an inline word diff."""

_WORDS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One line of a change's grid."""

    name: str
    before: Any
    after: Any
    changed: bool
    key: bool


def field_rows(diff: Diff) -> list[FieldRow]:
    """The grid of one change: every column of the row, key columns first."""
    before = diff.before or {}
    after = diff.after or {}
    names = list(dict.fromkeys([*diff.key, *before, *after]))
    changed = set(diff.changed)
    rows = []
    for name in names:
        # Every column of an inserted or deleted row is a change.
        is_changed = name in changed if diff.op == "update" else True
        rows.append(
            FieldRow(
                name=name,
                before=before.get(name, diff.key.get(name)) if diff.op != "insert" else None,
                after=after.get(name, diff.key.get(name)) if diff.op != "delete" else None,
                changed=is_changed,
                key=name in diff.key,
            )
        )
    return rows


def word_diff(before: str, after: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Both texts as runs of ("same" | "del" | "ins", text): words removed from *before* and
    words added in *after*."""
    a, b = _WORDS.findall(before), _WORDS.findall(after)
    old: list[tuple[str, str]] = []
    new: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            old.append(("same", "".join(a[i1:i2])))
            new.append(("same", "".join(b[j1:j2])))
            continue
        if i2 > i1:
            old.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            new.append(("ins", "".join(b[j1:j2])))
    return old, new


def is_long_text(before: Any, after: Any) -> bool:
    return (
        isinstance(before, str)
        and isinstance(after, str)
        and max(len(before), len(after)) >= LONG_TEXT
    )


@dataclass(frozen=True, slots=True)
class Colours:
    changed: str
    insert: str
    delete: str
    ins_word: str
    del_word: str
    muted: str
    header: str
    rule: str
    op_insert: str
    op_update: str
    op_delete: str


LIGHT = Colours(
    changed="#fff3bf",
    insert="#e6f7ea",
    delete="#fdecec",
    ins_word="#b2f2bb",
    del_word="#ffc9c9",
    muted="#868e96",
    header="#f1f3f5",
    rule="#dee2e6",
    op_insert="#2b8a3e",
    op_update="#1864ab",
    op_delete="#c92a2a",
)
DARK = Colours(
    changed="#4d3f00",
    insert="#17361f",
    delete="#3f1a1a",
    ins_word="#2b6a36",
    del_word="#7a2a2a",
    muted="#909296",
    header="#2c2e33",
    rule="#373a40",
    op_insert="#8ce99a",
    op_update="#74c0fc",
    op_delete="#ffa8a8",
)


def _runs_html(runs: Sequence[tuple[str, str]], colours: Colours) -> str:
    out = []
    for kind, text in runs:
        body = html.escape(text)
        if kind == "del":
            out.append(
                f'<span style="background-color:{colours.del_word};'
                f'text-decoration:line-through">{body}</span>'
            )
        elif kind == "ins":
            out.append(f'<span style="background-color:{colours.ins_word}">{body}</span>')
        else:
            out.append(body)
    return "".join(out)


def _cell(value: Any, colours: Colours) -> str:
    if value is None:
        return f'<i style="color:{colours.muted}">null</i>'
    return html.escape(value_text(value))


def key_text(diff: Diff) -> str:
    """The row's key as ``id=1042``, or ``(new row)`` for an insert the database numbers."""
    key = ", ".join(f"{k}={value_text(v)}" for k, v in diff.key.items())
    return key or "(new row)"


def change_title(diff: Diff) -> str:
    return f"{diff.op.upper()} {diff.table} {key_text(diff)}"


def diff_html(diffs: Sequence[Diff], colours: Colours) -> str:
    """The grids of every change, as rich text."""
    if not diffs:
        return f'<p style="color:{colours.muted}">This proposal changes no rows.</p>'
    parts = []
    for diff in diffs:
        op_colour = {
            "insert": colours.op_insert,
            "update": colours.op_update,
            "delete": colours.op_delete,
        }[diff.op]
        row_bg = {"insert": colours.insert, "delete": colours.delete}.get(diff.op)
        parts.append(
            f'<p style="margin-top:10px;margin-bottom:4px"><b style="color:{op_colour}">'
            f"{html.escape(diff.op.upper())}</b> <b>{html.escape(diff.table)}</b> "
            f'<span style="color:{colours.muted}">'
            f"{html.escape(key_text(diff))}"
            f"</span></p>"
        )
        parts.append(
            f'<table width="100%" cellspacing="0" cellpadding="4" '
            f'style="border-collapse:collapse;border:1px solid {colours.rule}">'
            f'<tr style="background-color:{colours.header}">'
            f'<th align="left" width="22%">field</th><th align="left" width="39%">before</th>'
            f'<th align="left" width="39%">after</th></tr>'
        )
        for row in field_rows(diff):
            bg: str | None
            if diff.op == "update" and row.changed:
                bg = colours.changed
            elif diff.op != "update":
                bg = row_bg
            else:
                bg = None
            style = f' style="background-color:{bg}"' if bg else ""
            name = html.escape(row.name)
            if row.key:
                name = f"{name} <span style='color:{colours.muted}'>(key)</span>"
            if row.changed and diff.op == "update" and is_long_text(row.before, row.after):
                old, new = word_diff(row.before, row.after)
                before, after = _runs_html(old, colours), _runs_html(new, colours)
            else:
                before = "" if diff.op == "insert" else _cell(row.before, colours)
                after = "" if diff.op == "delete" else _cell(row.after, colours)
            weight = "<b>{}</b>" if row.changed and diff.op == "update" else "{}"
            parts.append(
                f"<tr{style}><td>{weight.format(name)}</td><td>{before}</td>"
                f"<td>{weight.format(after)}</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)


class DiffView(QWidget):
    """The changes of one review, or its raw proposal JSON."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._review: Review | None = None
        self.title = plain_label(QLabel("Changes"))
        self.title.setObjectName("sectionTitle")
        self.raw_toggle = QPushButton("Raw JSON")
        self.raw_toggle.setCheckable(True)
        self.raw_toggle.setToolTip(
            "Show the proposal exactly as the agent wrote it, and the rows it relied on"
        )
        self.raw_toggle.toggled.connect(self._show_raw)
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.raw = QPlainTextEdit()
        self.raw.setReadOnly(True)
        self.raw.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.browser.setAccessibleName("Changes")
        self.browser.setAccessibleDescription(
            "Each row the proposal writes: field, value before and value after"
        )
        self.raw.setAccessibleName("Raw proposal JSON")
        self.raw.setAccessibleDescription(
            "The proposal exactly as the agent wrote it, then the rows it relied on"
        )
        self.raw_toggle.setAccessibleDescription("Switch between the changes and the raw JSON")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.browser)
        self.stack.addWidget(self.raw)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.raw_toggle)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)

    @property
    def showing_raw(self) -> bool:
        return self.stack.currentWidget() is self.raw

    def set_review(self, review: Review | None) -> None:
        self._review = review
        self.raw_toggle.setEnabled(review is not None)
        if review is None:
            self.title.setText("Changes")
            self.browser.setHtml("")
            self.raw.setPlainText("")
            return
        n = review.rows
        ops = ", ".join(f"{count} {op}" for op, count in sorted(review.ops.items()))
        self.title.setText(f"Changes: {n} row{'s' if n != 1 else ''} ({ops})" if n else "Changes")
        self.refresh_html()
        # The proposal as the agent wrote it, then the rows it read (not part of its answer).
        raw = {**review.proposal, "relied_on": [read.to_json() for read in review.reads]}
        self.raw.setPlainText(json.dumps(raw, indent=2, ensure_ascii=False))

    def refresh_html(self) -> None:
        """Render again (after a palette change)."""
        if self._review is None:
            return
        colours = DARK if is_dark(self.palette()) else LIGHT
        scroll = self.browser.verticalScrollBar().value()
        self.browser.setHtml(diff_html(self._review.diffs, colours))
        self.browser.verticalScrollBar().setValue(scroll)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.refresh_html()

    def _show_raw(self, raw: bool) -> None:
        self.stack.setCurrentWidget(self.raw if raw else self.browser)
        self.raw_toggle.setText("Show diff" if raw else "Raw JSON")
