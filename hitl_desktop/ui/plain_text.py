"""Text the model wrote, or a run's payload carries, shown as the characters it is.

Qt guesses a text's format: a `QLabel`, a `QMessageBox` or a tooltip whose text looks like HTML
(`Qt.mightBeRichText`) is rendered as rich text. A proposal summary such as ``<b>Fix</b><!--``
would then be bold and comment out everything after it, the warning a confirmation adds included.
Every widget that shows such text goes through one of these helpers; widgets that need rich text
for their own layout (the review details, the diff grid) escape the inserted text instead.
"""

from __future__ import annotations

import html
import sys

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox

__all__ = ["notification_body", "notifications_use_markup", "plain_box", "plain_label", "tooltip"]


def plain_label(label: QLabel) -> QLabel:
    """*label*, set to show its text as plain text."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def plain_box(box: QMessageBox) -> QMessageBox:
    """*box*, set to show its text and informative text as plain text.

    The informative text has a label of its own, created by `setInformativeText`: call this
    after setting the texts (`dialogs.ask` does, before it opens a box). The detailed text is
    plain already.
    """
    box.setTextFormat(Qt.TextFormat.PlainText)
    for label in box.findChildren(QLabel):
        label.setTextFormat(Qt.TextFormat.PlainText)
    return box


def tooltip(text: str) -> str:
    """*text* as a tooltip that shows its characters and line breaks.

    Qt has no plain-text tooltips: it renders a tip as rich text whenever the tip looks like
    HTML. Escaped inside a paragraph, the tip always looks like HTML, and its own markup is text.
    """
    return f"<p style='white-space:pre-wrap'>{html.escape(text, quote=False)}</p>"


def notifications_use_markup(platform: str = sys.platform) -> bool:
    """Whether desktop notifications may interpret markup in their body: the freedesktop
    notification servers of Linux and the BSDs do; Windows and macOS show the text as is."""
    return not platform.startswith(("win32", "cygwin", "darwin"))


def notification_body(text: str, markup: bool) -> str:
    """*text* for a notification's body, escaped where the server reads markup."""
    return html.escape(text, quote=False) if markup else text
