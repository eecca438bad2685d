"""The keyboard shortcuts dialog (`?`, Help ▸ Keyboard shortcuts).

Its list is read from the window's own menus, actions and `QShortcut`s each time it opens, so it
says what the keys do now and cannot drift from them. The runs table's keys are Qt's own and are
listed as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .plain_text import plain_label

TABLE_KEYS: tuple[tuple[str, str], ...] = (
    ("Previous / next run", "Up, Down"),
    ("Select several runs", "Shift+Up, Shift+Down"),
    ("Select every run", "Ctrl+A"),
    ("Next / previous part of the window", "Tab, Shift+Tab"),
    ("Open a menu", "Alt+the underlined letter"),
)
"""What the runs table and the window do with keys by themselves (Qt's own keys)."""


@dataclass(frozen=True, slots=True)
class Shortcut:
    """One command and the keys that trigger it, as shown: ("Approve", "A, Ctrl+Return")."""

    section: str
    name: str
    keys: str


def plain_name(text: str) -> str:
    """A menu text without its mnemonic marks: "&Edit && approve…" → "Edit & approve…"."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def keys_text(sequences: Iterable[QKeySequence]) -> str:
    """The key sequences as the platform writes them, comma separated."""
    found = [s.toString(QKeySequence.SequenceFormat.NativeText) for s in sequences]
    return ", ".join(k for k in found if k)


def window_shortcuts(window: QMainWindow) -> list[Shortcut]:
    """Every shortcut *window* defines: its menus' actions under each menu's name, then its
    other actions and `QShortcut`s under "Other"; each action once."""
    found: list[Shortcut] = []
    seen: set[int] = set()

    def add(section: str, action: QAction) -> None:
        if id(action) in seen or action.isSeparator():
            return
        keys = keys_text(action.shortcuts())
        if keys and action.isVisible():
            seen.add(id(action))
            found.append(Shortcut(section, plain_name(action.text()), keys))

    for top in window.menuBar().actions():
        menu = top.menu()
        if not isinstance(menu, QMenu):
            continue
        for action in menu.actions():
            add(plain_name(top.text()), action)
    for action in window.findChildren(QAction):
        add("Other", action)
    for shortcut in window.findChildren(QShortcut):
        keys = keys_text(shortcut.keys())
        if keys and shortcut.isEnabled():
            name = shortcut.whatsThis() or shortcut.objectName() or "Shortcut"
            found.append(Shortcut("Other", name, keys))
    return found


class ShortcutsDialog(QDialog):
    """Lists the window's shortcuts by menu, and the table's own keys."""

    def __init__(self, window: QMainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self._window = window
        intro = plain_label(
            QLabel("Every command can be reached from the keyboard. Esc returns to the runs table.")
        )
        intro.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("shortcutsList")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Command", "Keys"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAccessibleName("Keyboard shortcuts")
        self.tree.setAccessibleDescription("Each command of the window and the keys that run it")
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)
        self.refresh()
        self.resize(520, 560)

    def refresh(self) -> None:
        """Read the window's shortcuts again."""
        self.tree.clear()
        sections: dict[str, QTreeWidgetItem] = {}
        rows = [*window_shortcuts(self._window)]
        rows += [Shortcut("Runs table", name, keys) for name, keys in TABLE_KEYS]
        for row in rows:
            section = sections.get(row.section)
            if section is None:
                section = QTreeWidgetItem(self.tree, [row.section])
                font = section.font(0)
                font.setBold(True)
                section.setFont(0, font)
                section.setFlags(Qt.ItemFlag.ItemIsEnabled)
                sections[row.section] = section
            QTreeWidgetItem(section, [row.name, row.keys])
        self.tree.expandAll()
        first = self.tree.topLevelItem(0)
        if first is not None:
            self.tree.setCurrentItem(first)

    def shortcuts(self) -> list[tuple[str, str]]:
        """(command, keys) as listed, in order (for tests and screen readers alike)."""
        listed = []
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            children = (
                [] if section is None else [section.child(j) for j in range(section.childCount())]
            )
            listed += [(item.text(0), item.text(1)) for item in children if item is not None]
        return listed

    def open_listing(self) -> None:
        """Show (or raise) the dialog with the shortcuts as they are now."""
        self.refresh()
        self.show()
        self.raise_()
        self.activateWindow()
        self.tree.setFocus(Qt.FocusReason.OtherFocusReason)
