"""The main window: views and filter, the live runs table, the review pane, the status bar.

The table takes several rows (Shift/Ctrl+click, Shift+arrows, Ctrl+A): the review pane shows the
current one, and Approve / Reject act on the waiting runs of the selection (`bulk`).

Everything works from the keyboard: the table has the focus at launch and after each decision,
Tab goes filter → table → review pane → decision buttons, Esc comes back to the table, every
command is in a menu with a mnemonic and most have a key (`?` lists them: `shortcuts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPushButton,
    QSplitter,
    QTabBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..units.urls import display_url
from .audit_view import AuditView
from .console import Console
from .decisions import Decisions
from .plain_text import tooltip
from .records import RunView, View, revert_hint
from .review_pane import ReviewPane
from .runs_model import (
    EXPIRES_IN,
    REQUEST,
    ROW_ROLE,
    ROWS,
    STATUS,
    TABLES,
    TAGS,
    TASK,
    WAITING_SINCE,
    RunsModel,
    RunsProxy,
    is_dark,
)
from .shortcuts import ShortcutsDialog
from .status import StatusBar

COLUMN_WIDTHS = {
    TASK: 84,
    TABLES: 150,
    ROWS: 84,
    WAITING_SINCE: 110,
    EXPIRES_IN: 96,
    TAGS: 90,
    STATUS: 96,
}
VIEWS = tuple(View)
DEFAULT_POINT_SIZE = 9.0
"""The font size COLUMN_WIDTHS were drawn for (Qt's default on Linux)."""


class MainWindow(QMainWindow):
    """The approval console's window. Logic lives in `Console`; this wires widgets to it."""

    settings_requested = Signal()
    quit_requested = Signal()

    def __init__(
        self,
        console: Console,
        *,
        store: str,
        state_file: Path | None = None,
        examples: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.console = console
        self.model: RunsModel = console.model
        self.examples = tuple(examples)
        self.state_file = state_file
        self.hide_on_close = False
        self.setWindowTitle("hitl-desktop — approvals")

        # ---- top: views, filter, actions
        self.tabs = QTabBar()
        self.tabs.setObjectName("viewTabs")
        self.tabs.setExpanding(False)
        self.tabs.setDrawBase(False)
        for view in VIEWS:
            self.tabs.addTab(view.value)
        self.tabs.currentChanged.connect(self._on_tab)
        self.tabs.setAccessibleName("Views")
        self.tabs.setAccessibleDescription("Which runs the table lists (Ctrl+1 to Ctrl+7)")
        self.filter = QLineEdit()
        self.filter.setObjectName("filter")
        self.filter.setPlaceholderText("Filter (request, table, status, run id…)   Ctrl+F")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMinimumWidth(260)
        self.filter.setAccessibleName("Filter runs")
        self.filter.setAccessibleDescription(
            "Show only the runs whose request, table, status or run id contains this text (Ctrl+F)"
        )
        self.new_button = QPushButton("New request…")
        self.new_button.setObjectName("newRequestButton")
        self.new_button.setToolTip("Ask the agent for a change (Ctrl+N)")
        self.settings_button = QPushButton("Settings…")
        self.settings_button.setObjectName("settingsButton")
        self.settings_button.clicked.connect(self.settings_requested)
        top = QHBoxLayout()
        top.setContentsMargins(8, 6, 8, 0)
        top.addWidget(self.tabs)
        top.addStretch(1)
        top.addWidget(self.filter, 2)
        top.addWidget(self.new_button)
        top.addWidget(self.settings_button)

        # ---- the table
        self.proxy = RunsProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setObjectName("runsTable")
        self.table.setAccessibleName("Runs")
        self.table.setAccessibleDescription(
            "The runs of the current view, newest first; the current one shows in the review "
            "pane below. A approves, R rejects, E edits and approves, ? lists every key"
        )
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table for the review pane
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setVisible(False)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(REQUEST, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(48)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        # The widths suit the default font (9 pt). A larger system font widens every column to
        # its title (and its sort arrow, counted in the hint once sorting is on), and the two
        # whose short texts fill them ("db-change", "1 update") in proportion; the others keep
        # their width for the request.
        scale = max(1.0, self.table.font().pointSizeF() / DEFAULT_POINT_SIZE)
        for column, width in COLUMN_WIDTHS.items():
            wanted = round(width * scale) if column in (TASK, ROWS) else width
            header.resizeSection(column, max(wanted, header.sectionSizeHint(column)))
        self.proxy.sort(-1)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.table.selectionModel().selectionChanged.connect(self._sync_buttons)
        self.proxy.rowsInserted.connect(self._on_rows_inserted)
        self.proxy.modelReset.connect(self._on_reset)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)

        # ---- review pane, and the decisions made from it
        self.review = ReviewPane()
        self.decisions = Decisions(console, self.review, self, self, self.examples)
        self.new_button.clicked.connect(self.decisions.new_request)
        self.review.approve_requested.connect(self.decisions.approve)
        self.review.reject_requested.connect(self.decisions.reject)
        self.review.edit_requested.connect(self.decisions.edit_and_approve)
        self.review.revert_requested.connect(self.decisions.revert)
        self.review.run_link_activated.connect(self.show_run)
        self._follow: str | None = None
        """A run just started here (a revert), to select once the table lists it."""
        self.audit_view: AuditView | None = None
        self._deciding_many = False
        self._syncing = False
        self._many = False
        self._tips: dict[QPushButton, str] = {}
        self._texts = {b: b.text() for b in (self.review.approve_button, self.review.reject_button)}
        self._names = {b: b.accessibleName() for b in self._texts}
        # The pane sets its buttons for its one run (each second too): with several runs
        # selected the window corrects them whenever the pane changes them.
        for button in (self.review.approve_button, self.review.reject_button):
            self._tips[button] = button.toolTip()
            button.installEventFilter(self)
        self._tips[self.review.edit_button] = self.review.edit_button.toolTip()
        self.review.edit_button.installEventFilter(self)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.review)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        # ---- status bar
        self.status = StatusBar()
        self.setStatusBar(self.status)
        self.store_label = self.status.store_label
        self.target_label = self.status.target_label
        self.engine_label = self.status.engine_label
        self.counts_label = self.status.counts_label
        self.status.set_store(store)
        active = console.settings.active_profile()
        self.set_target(None if active is None else active.target_url)

        self.shortcuts_dialog: ShortcutsDialog | None = None
        self._actions()
        self._tab_order()
        console.run_view_changed.connect(self._on_run_view)
        console.run_stopped_waiting.connect(self._on_stopped)
        console.message.connect(self.show_message)
        console.counts_changed.connect(self._on_counts)
        console.view_changed.connect(self._on_view_changed)

        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self.tick)
        self._ticker.start()

        self.resize(1280, 800)
        self.splitter.setSizes([330, 420])
        self.restore_state()
        # Left to Qt, the first widget of the tab chain takes the focus when the window is first
        # activated, sometimes before the table is filled: Down then did nothing and A acted
        # on the first row. The table is the focus from the start.
        self.focus_table()

    # ------------------------------------------------------------ setup

    def _actions(self) -> None:
        def action(name: str, keys: Sequence[QKeySequence | str], slot: Any) -> QAction:
            act = QAction(name, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        def menu(title: str, name: str, actions: Sequence[QAction | None]) -> QMenu:
            found = QMenu(title, self)
            found.setObjectName(name)
            for act in actions:
                if act is None:
                    found.addSeparator()
                else:
                    found.addAction(act)
            self.menuBar().addMenu(found)
            return found

        decide = self.decisions
        self.approve_action = action("&Approve", ["A", "Ctrl+Return", "Ctrl+Enter"], decide.approve)
        self.reject_action = action("&Reject…", ["R"], decide.reject)
        self.edit_action = action("&Edit && approve…", ["E"], decide.edit_and_approve)
        self.revert_action = action("Re&vert…", [], decide.revert)
        self.revert_action.setEnabled(False)
        self.revert_action.setToolTip(revert_hint(None))
        self.audit_action = action("A&udit trail…", ["Ctrl+U"], self.show_audit)
        self.audit_action.setToolTip(
            "The selected run's audit entries, and whether the trail verifies"
        )
        self.new_action = action(
            "&New request…", [QKeySequence(QKeySequence.StandardKey.New)], decide.new_request
        )
        self.settings_action = action("&Settings…", ["Ctrl+,"], self.settings_requested.emit)
        self.quit_action = action("&Quit", ["Ctrl+Q"], self.quit_requested.emit)
        self.view_actions = [
            action(
                f"&{i + 1} {view.value}",
                [f"Ctrl+{i + 1}"],
                lambda _=False, v=view: self.set_view(v),
            )
            for i, view in enumerate(VIEWS)
        ]
        self.filter_action = action(
            "&Filter", [QKeySequence(QKeySequence.StandardKey.Find)], self._focus_filter
        )
        self.table_action = action("Go to the runs &table", ["Esc"], self.focus_table)
        self.raw_action = action("Raw &JSON", ["Ctrl+J"], self.review.diff.raw_toggle.toggle)
        self.raw_action.setToolTip("Show the proposal exactly as the agent wrote it, or the diff")
        self.shortcuts_action = action("&Keyboard shortcuts", ["?", "F1"], self.show_shortcuts)

        menu(
            "&File",
            "fileMenu",
            [self.new_action, None, self.settings_action, None, self.quit_action],
        )
        menu(
            "&View",
            "viewMenu",
            [*self.view_actions, None, self.filter_action, self.table_action, self.raw_action],
        )
        self.run_menu = menu(
            "&Run",
            "runMenu",
            [
                self.approve_action,
                self.reject_action,
                self.edit_action,
                None,
                self.revert_action,
                self.audit_action,
            ],
        )
        self.run_menu.setToolTipsVisible(True)  # a disabled Revert… says why
        menu("&Help", "helpMenu", [self.shortcuts_action])
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.table.addActions([self.approve_action, self.reject_action, self.edit_action])
        self.table.addActions([self.revert_action, self.audit_action])
        # The buttons beside the filter do what the File menu does: their tooltips say the key.
        self.new_button.setToolTip("Ask the agent for a change (Ctrl+N)")
        self.settings_button.setToolTip("Targets, store, notifications (Ctrl+,)")

    def _tab_order(self) -> None:
        """Filter → table → review pane (details, diff grid or raw JSON, relied on) → decision
        buttons, then the views and the buttons beside the filter, and round again."""
        pane, diff = self.review, self.review.diff
        chain = [
            self.filter,
            self.table,
            pane.parts.list,
            pane.details,
            diff.browser,
            diff.raw,
            diff.raw_toggle,
            pane.relied_on.tree,
            pane.reject_button,
            pane.edit_button,
            pane.approve_button,
            self.tabs,
            self.new_button,
            self.settings_button,
        ]
        for before, after in pairwise(chain):
            QWidget.setTabOrder(before, after)

    def focus_table(self) -> None:
        """Give the runs table the keyboard focus (at launch, after decisions, on Esc)."""
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def show_shortcuts(self) -> None:
        """The keyboard shortcuts dialog, read from the actions as they are now."""
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(self)
        self.shortcuts_dialog.open_listing()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.focusWidget() is None:
            self.focus_table()

    def set_target(self, target: str | None) -> None:
        text = display_url(target) if target else "no target database (Settings)"
        self.status.set_target(text)

    def set_engine_state(self, text: str) -> None:
        self.engine_label.setText(text)
        self.status.fit()

    def set_view(self, view: View) -> None:
        self.tabs.setCurrentIndex(VIEWS.index(view))

    def _on_tab(self, index: int) -> None:
        view = VIEWS[index]
        if view is not self.console.view:
            self.console.set_view(view)

    def _on_view_changed(self, view: View) -> None:
        if self.tabs.currentIndex() != VIEWS.index(view):
            self.tabs.blockSignals(True)
            self.tabs.setCurrentIndex(VIEWS.index(view))
            self.tabs.blockSignals(False)

    def _focus_filter(self) -> None:
        self.filter.setFocus()
        self.filter.selectAll()

    # ------------------------------------------------------------ selection

    def selected_run(self) -> str | None:
        index = self.table.currentIndex()
        return self.proxy.run_id(index.row()) if index.isValid() else None

    def selected_runs(self) -> list[str]:
        """The selected runs, in the table's order."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        found = (self.proxy.run_id(row) for row in rows)
        return [run_id for run_id in found if run_id is not None]

    def select_runs(self, run_ids: Sequence[str]) -> None:
        """Select these runs' rows (those in the table), the first one current."""
        flags = QItemSelectionModel.SelectionFlag
        selection = self.table.selectionModel()
        first = True
        for run_id in run_ids:
            row = self.proxy.row_of(run_id)
            if row < 0:
                continue
            index = self.proxy.index(row, 0)
            if first:
                selection.setCurrentIndex(index, flags.ClearAndSelect | flags.Rows)
                first = False
            else:
                selection.select(index, flags.Select | flags.Rows)

    def select_run(self, run_id: str) -> bool:
        """Select the run's row (when it is in the table); True if it is."""
        row = self.proxy.row_of(run_id)
        if row < 0:
            return False
        index = self.proxy.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)
        return True

    def show_run(self, run_id: str) -> None:
        """Bring the window up on this run (a tray notification was clicked)."""
        self.show_window()
        if not self.select_run(run_id):  # not among this view's loaded rows: review it anyway
            self.console.select(run_id)

    def show_window(self) -> None:
        self.show()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.raise_()
        self.activateWindow()

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        run_id = self.proxy.run_id(current.row()) if current.isValid() else None
        if run_id != self._follow:  # the reviewer moved on
            self._follow = None
        self.console.select(run_id)

    def _on_reset(self) -> None:
        # A reset does not announce the lost current row: the review pane follows by hand.
        self.console.select(None)
        self._on_rows_inserted()

    def _on_rows_inserted(self, *_: Any) -> None:
        if self._follow is not None and self.select_run(self._follow):
            self._follow = None
        elif not self.table.currentIndex().isValid() and self.proxy.rowCount() > 0:
            self.table.selectRow(0)

    def show_new_run(self, run_id: str) -> None:
        """Review the run just started here (a revert): selected now, or shown now and
        selected once listed; in a view that would not list it, in All runs."""
        if self.console.view not in (View.WAITING, View.ALL):
            self.set_view(View.ALL)
        if not self.select_run(run_id):
            self._follow = run_id
            self.console.select(run_id)

    def next_waiting(self, after: str, skip: frozenset[str] = frozenset()) -> str | None:
        """The waiting run below *after* in the table (or else above it), for clearing a queue;
        never one of *skip* (runs decided a moment ago that may still show as waiting)."""
        start = self.proxy.row_of(after)
        count = self.proxy.rowCount()
        order = list(range(start + 1, count)) + list(range(start - 1, -1, -1))
        if start < 0:
            order = list(range(count))
        for row in order:
            found = self.proxy.data(self.proxy.index(row, 0), ROW_ROLE)
            if (
                found is not None
                and found.id != after
                and found.id not in skip
                and found.waiting
                and not self.model.is_leaving(found.id)
            ):
                return str(found.id)
        return None

    # ------------------------------------------------------------ console → widgets

    def _on_run_view(self, view: RunView | None) -> None:
        self.review.set_view(view)
        state = None if view is None else view.revert
        self.revert_action.setEnabled(state is not None and state.revertible)
        self.revert_action.setToolTip(revert_hint(state))
        self._sync_buttons()

    def _on_stopped(self, run_id: str, message: str) -> None:
        if self.review.view is not None and self.review.view.run.id == run_id:
            self.review.stop(message)
            self._sync_buttons()
        self.show_message(message)

    def show_message(self, text: str) -> None:
        self.status.showMessage(text)

    def advance_from(self, run_id: str) -> None:
        following = self.next_waiting(run_id)
        if following is not None:
            self.select_run(following)
        self.focus_table()

    def set_requesting(self, busy: bool) -> None:
        self.new_button.setEnabled(not busy)

    def set_deciding_many(self, busy: bool) -> None:
        self._deciding_many = busy
        for act in (self.approve_action, self.reject_action):
            act.setEnabled(not busy)
        self._sync_buttons()

    def after_bulk(self, run_ids: Sequence[str]) -> None:
        """After decisions on several runs: the next waiting run, alone, and the table's focus."""
        decided = frozenset(run_ids)
        following = self.next_waiting(run_ids[-1], decided) if run_ids else None
        if following is not None:
            self.select_run(following)
        else:
            current = self.table.currentIndex()
            if current.isValid():
                self.table.selectionModel().select(
                    current,
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows,
                )
        self.focus_table()

    # ------------------------------------------------------------ several runs selected

    def _sync_buttons(self, *_: Any) -> None:
        """With several runs selected: Approve and Reject while any of them waits, never
        Edit & approve; with one, whatever the review pane says for it."""
        if self._syncing:
            return
        self._syncing = True
        try:
            self._apply_selection_state()
        finally:
            self._syncing = False

    def _apply_selection_state(self) -> None:
        pane = self.review
        selected = self.selected_runs()
        many = len(selected) > 1
        self.edit_action.setEnabled(not many)
        was_many, self._many = self._many, many
        if not many:
            if was_many:  # back to one run: the pane's own state for it
                for button, tip in self._tips.items():
                    button.setToolTip(tip)
                for button, text in self._texts.items():
                    button.setText(text)
                for button, name in self._names.items():
                    button.setAccessibleName(name)
                pane.set_busy(self.decisions.busy)
            return
        waiting = sum(
            1
            for run_id in selected
            if (row := self.model.get(run_id)) is not None
            and row.waiting
            and not self.model.is_leaving(run_id)
        )
        enable = waiting > 0 and not self._deciding_many
        for button in (pane.approve_button, pane.reject_button):
            if button.isEnabled() != enable:
                button.setEnabled(enable)
        what = f"the {waiting} waiting of the {len(selected)} selected runs"
        runs = f"{waiting} run{'s' if waiting != 1 else ''}"
        pane.approve_button.setText(f"Approve {runs}…")
        pane.reject_button.setText(f"Reject {runs}…")
        pane.approve_button.setAccessibleName(f"Approve {runs}")
        pane.reject_button.setAccessibleName(f"Reject {runs}")
        pane.approve_button.setToolTip(tooltip(f"Approve {what} (A)"))
        pane.reject_button.setToolTip(tooltip(f"Reject {what}; nothing is written (R)"))
        if pane.edit_button.isEnabled():
            pane.edit_button.setEnabled(False)
        pane.edit_button.setToolTip(
            f"Edit & approve is for one run: {len(selected)} are selected, select only one"
        )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.EnabledChange and watched in self._tips:
            self._sync_buttons()
        return super().eventFilter(watched, event)

    # ------------------------------------------------------------ the audit trail

    def show_audit(self) -> None:
        """Open the audit trail window on the selected run (it follows the selection)."""
        if self.audit_view is None:
            self.audit_view = AuditView(self.console, self)
        self.audit_view.open_for(self.console.current)

    def _on_counts(self, counts: dict[str, int]) -> None:
        waiting = counts.get("WAITING", 0)
        working = counts.get("QUEUED", 0) + counts.get("EXECUTING", 0)
        parts = [f"{waiting:,} waiting"]
        if working:
            parts.append(f"{working:,} working")
        parts.append(f"{counts.get('COMPLETED', 0):,} done")
        failed = counts.get("FAILED", 0)
        if failed:
            parts.append(f"{failed:,} failed")
        self.counts_label.setText(" · ".join(parts))
        self.status.fit()

    # ------------------------------------------------------------ window state

    def _state(self) -> QSettings | None:
        if self.state_file is None:
            return None
        return QSettings(str(self.state_file), QSettings.Format.IniFormat)

    def restore_state(self) -> None:
        state = self._state()
        if state is None:
            return
        geometry = state.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        split = state.value("window/splitter")
        if split is not None:
            self.splitter.restoreState(split)
        review_split = state.value("window/review_splitter")
        if review_split is not None:
            self.review.splitter.restoreState(review_split)

    def save_state(self) -> None:
        state = self._state()
        if state is None:
            return
        state.setValue("window/geometry", self.saveGeometry())
        state.setValue("window/splitter", self.splitter.saveState())
        state.setValue("window/review_splitter", self.review.splitter.saveState())
        state.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        if self.hide_on_close:
            event.ignore()
            self.hide()
            return
        event.accept()
        self.quit_requested.emit()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.model.set_dark(is_dark(self.palette()))

    def tick(self) -> None:
        """Repaint the visible rows: the countdown column is computed when painted."""
        self.table.viewport().update()
