"""The window's status bar: a transient message shown in full, and the store and target paths.

A decision's result ("Approved: Mark invoice INV-004854 as paid") must be read whole, so the
message takes the bar's free width and wraps onto a second line rather than being cut; the paths
give way first: elided in the middle (the file name and the start both stay), whole in their
tooltip and accessible name. The engine state and the run counts are short and keep their width.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, QTimer
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QStatusBar, QWidget

from .plain_text import plain_label, tooltip

MESSAGE_MS = 10_000
"""How long a message stays (as `QStatusBar.showMessage` with a timeout would keep it)."""
PATH_MIN_CHARS = 18
"""The narrowest a path gets beside its "Store: ", in average characters: "/h…/runs.db"."""
MARGIN = 10
"""Left and right margin of every label in the bar, in pixels."""


def elide_path(path: str, metrics: QFontMetrics, width: int) -> str:
    """*path* in *width* pixels: the folders elided in the middle, the file name whole while
    it fits ("/home/ana/…/demo/runs.db"), else the whole path elided in the middle."""
    if metrics.horizontalAdvance(path) <= width:
        return path
    cut = path.rfind("/")
    name = path[cut:] if cut > 0 else ""
    room = width - metrics.horizontalAdvance(name)
    folders = metrics.elidedText(path[:cut], Qt.TextElideMode.ElideMiddle, room) if name else ""
    if not name or len(folders) < 3:
        return metrics.elidedText(path, Qt.TextElideMode.ElideMiddle, width)
    return folders + name


class PathLabel(QLabel):
    """ "Store: /a/long/path/runs.db", elided in the middle to the width it is given."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        plain_label(self)
        self._full = self._prefix = self._path = ""
        self._wanted = 0
        self.setContentsMargins(MARGIN, 0, MARGIN, 0)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setObjectName(name)

    @property
    def full_text(self) -> str:
        return self._full

    def set_path(self, prefix: str, path: str) -> None:
        """Show *prefix* and *path* ("Store: ", "/a/b/runs.db"), the path elided as needed and
        whole in the tooltip."""
        self._prefix = prefix
        self._full = prefix + path
        self._path = path
        self.setToolTip(tooltip(path))
        self.setAccessibleName(self._full)
        self._elide()

    def full_width(self) -> int:
        """The width that shows the whole text."""
        return self.fontMetrics().horizontalAdvance(self._full) + 2 * MARGIN + 2

    def min_width(self) -> int:
        metrics = self.fontMetrics()
        least = (
            metrics.horizontalAdvance(self._prefix) + metrics.averageCharWidth() * PATH_MIN_CHARS
        )
        return min(self.full_width(), least + 2 * MARGIN + 2)

    def set_width(self, width: int) -> None:
        """The width the bar gives the path now; less when the window is narrowed meanwhile."""
        if width != self._wanted:
            self._wanted = width
            self.setMaximumWidth(width)
            self.updateGeometry()

    def sizeHint(self) -> QSize:
        return QSize(self._wanted or self.min_width(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(self.min_width(), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        metrics = self.fontMetrics()
        width = max(0, self.contentsRect().width() - metrics.horizontalAdvance(self._prefix))
        self.setText(self._prefix + elide_path(self._path, metrics, width))


class MessageLabel(QLabel):
    """The transient message: all the bar's free width, and as many lines as its text needs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        plain_label(self)
        self.setObjectName("statusMessage")
        self.setWordWrap(True)
        self.setContentsMargins(MARGIN, 0, MARGIN, 0)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._fit_height()

    def one_line_width(self) -> int:
        """The width that shows the message on one line."""
        return self.fontMetrics().horizontalAdvance(self.text()) + 2 * MARGIN + 2

    def text_height(self, width: int) -> int:
        """The height of the text wrapped to *width* (QLabel's own answer keeps old sizes)."""
        if not self.text():
            return 0
        margins = self.contentsMargins()
        room = QRect(0, 0, max(width - margins.left() - margins.right(), 1), 1 << 20)
        flags = int(Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignLeft)
        bounds = self.fontMetrics().boundingRect(room, flags, self.text())
        return bounds.height() + margins.top() + margins.bottom()

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit_height()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def _fit_height(self) -> None:
        # The main window's layout does not ask a status bar for its height at each width:
        # the label says how tall its wrapped text is whenever its width or text changes.
        line = self.fontMetrics().height()
        wanted = max(line, self.text_height(self.width()))
        if self.height() != wanted or self.minimumHeight() != wanted:
            self.setFixedHeight(wanted)


class StatusBar(QStatusBar):
    """A status bar whose messages are never cut; `showMessage` keeps Qt's signature."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.message_label = MessageLabel()
        self.store_label = PathLabel("storeLabel")
        self.target_label = PathLabel("targetLabel")
        self.engine_label = plain_label(QLabel("engine starting…"))
        self.engine_label.setObjectName("engineLabel")
        self.counts_label = plain_label(QLabel(""))
        self.counts_label.setObjectName("countsLabel")
        self.addWidget(self.message_label, 1)
        for label in (self.store_label, self.target_label, self.engine_label, self.counts_label):
            label.setContentsMargins(MARGIN, 0, MARGIN, 0)
            self.addPermanentWidget(label)
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self.clearMessage)

    # ------------------------------------------------------------ the transient message

    def showMessage(self, text: str, timeout: int = MESSAGE_MS) -> None:  # type: ignore[override]
        """Show *text* in full for *timeout* ms (0: until the next message)."""
        self.message_label.setText(text)
        self.message_label.setToolTip(tooltip(text) if text else "")
        self._expiry.stop()
        if timeout > 0 and text:
            self._expiry.start(timeout)
        self.fit()
        self.messageChanged.emit(text)

    def clearMessage(self) -> None:
        if self.message_label.text():
            self.showMessage("", 0)

    def currentMessage(self) -> str:
        return self.message_label.text()

    # ------------------------------------------------------------ the paths

    def set_store(self, store: str) -> None:
        self.store_label.set_path("Store: ", store)
        self.fit()

    def set_target(self, text: str) -> None:
        self.target_label.set_path("Target: ", text)
        self.fit()

    def fit(self) -> None:
        """Share the width: the engine state and counts whole, the message whole on one line
        when it can be, the paths whole when they fit and elided in the middle when not."""
        paths = (self.store_label, self.target_label)
        fixed = sum(label.sizeHint().width() for label in (self.engine_label, self.counts_label))
        spacing = 6 * 5 + 8  # between the five labels, and the bar's own margins
        free = self.width() - fixed - spacing - self.message_label.one_line_width()
        fulls = [label.full_width() for label in paths]
        widths = [label.min_width() for label in paths]
        spare = max(0, free - sum(widths))
        # Grow the narrower path to its whole width first, then the other with what is left.
        for i in sorted(range(len(paths)), key=lambda i: fulls[i]):
            grow = min(fulls[i] - widths[i], spare)
            widths[i] += grow
            spare -= grow
        for label, width in zip(paths, widths, strict=True):
            label.set_width(width)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.fit()
