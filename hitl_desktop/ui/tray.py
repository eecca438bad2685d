"""The system tray: a count of waiting runs, a notification per new one, Show / Mute / Quit.

Notifications go through a :class:`Notifier` (by default the tray icon's balloon), so tests can
see that one was raised without a tray. Where no tray exists (no status notifier host, bare X,
offscreen) the class still works, shows nothing, and offers :attr:`Tray.unavailable_message`
for the window to say once.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from .icons import app_icon, tray_icon
from .plain_text import notification_body, notifications_use_markup

__all__ = ["Notifier", "Tray", "TrayNotifier", "waiting_text"]

NOTIFICATION_TITLE = "Waiting for your review"
OVERDUE_TITLE = "Overdue review"
NOTIFICATION_MS = 8000


class Notifier(Protocol):
    """Shows one desktop notification."""

    def notify(self, title: str, message: str) -> None: ...


class TrayNotifier:
    """The default :class:`Notifier`: the tray icon's own message balloon."""

    def __init__(self, icon: QSystemTrayIcon, *, markup: bool | None = None) -> None:
        """*markup*: whether the notification server reads markup in a message (default:
        `notifications_use_markup()`); the message, often the model's summary, is escaped
        for it then, so that it shows as written."""
        self._icon = icon
        self._markup = notifications_use_markup() if markup is None else markup

    def body(self, message: str) -> str:
        """*message* as this notifier sends it."""
        return notification_body(message, self._markup)

    def notify(self, title: str, message: str) -> None:
        self._icon.showMessage(title, self.body(message), app_icon(), NOTIFICATION_MS)


def waiting_text(count: int) -> str:
    """The tooltip for *count* waiting runs: ``"3 runs waiting for review"``."""
    if count <= 0:
        return "No runs waiting for review"
    return f"{count} {'run' if count == 1 else 'runs'} waiting for review"


class Tray(QObject):
    """The tray icon and its menu; works (silently) where the desktop has no tray.

    Signals: ``show_requested`` (Show, or a click on the icon), ``run_requested(run_id)`` (a
    click on a notification), ``quit_requested`` (Quit), ``muted_changed(muted)``.
    """

    show_requested = Signal()
    run_requested = Signal(str)
    quit_requested = Signal()
    muted_changed = Signal(bool)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        muted: bool = False,
        notifier: Notifier | None = None,
        tray_available: bool | None = None,
    ) -> None:
        """*tray_available* defaults to :meth:`available`; *notifier* to the tray's balloon
        (none without a tray). *muted* is the initial state (``not settings.notifications``).
        """
        super().__init__(parent)
        self._waiting = 0
        self._muted = muted
        self._last_run_id: str | None = None

        self.menu = QMenu()
        self.show_action = QAction("Show", self)
        self.mute_action = QAction("Mute notifications", self)
        self.mute_action.setCheckable(True)
        self.mute_action.setChecked(muted)
        self.quit_action = QAction("Quit", self)
        self.menu.addAction(self.show_action)
        self.menu.addAction(self.mute_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.show_action.triggered.connect(lambda: self.show_requested.emit())
        self.quit_action.triggered.connect(lambda: self.quit_requested.emit())
        self.mute_action.toggled.connect(self.set_muted)

        has_tray = self.available() if tray_available is None else tray_available
        self._icon: QSystemTrayIcon | None = None
        if has_tray:
            self._icon = QSystemTrayIcon(tray_icon(0), self)
            self._icon.setContextMenu(self.menu)
            self._icon.setToolTip(waiting_text(0))
            self._icon.activated.connect(self._on_activated)
            self._icon.messageClicked.connect(self._on_message_clicked)
            self._icon.show()
        if notifier is None and self._icon is not None:
            notifier = TrayNotifier(self._icon)
        self._notifier = notifier

    @staticmethod
    def available() -> bool:
        """Whether the desktop has a system tray to put an icon in."""
        return QSystemTrayIcon.isSystemTrayAvailable()

    @property
    def has_tray(self) -> bool:
        """Whether this tray shows an icon (False where the desktop has none)."""
        return self._icon is not None

    @property
    def unavailable_message(self) -> str | None:
        """What the window should say once when there is no tray; ``None`` when there is one."""
        if self._icon is not None:
            return None
        return (
            "No system tray on this desktop: closing the window quits the app, and new runs "
            "waiting for review are not announced by desktop notifications."
        )

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def tooltip(self) -> str:
        return waiting_text(self._waiting)

    @property
    def muted(self) -> bool:
        return self._muted

    @property
    def icon(self) -> QSystemTrayIcon | None:
        """The tray icon itself, or ``None`` without a tray."""
        return self._icon

    def set_waiting(self, count: int) -> None:
        """Show *count* waiting runs: the icon's badge and its tooltip."""
        count = max(0, count)
        if count == self._waiting:
            return
        self._waiting = count
        if self._icon is not None:
            self._icon.setIcon(tray_icon(count))
            self._icon.setToolTip(waiting_text(count))

    def notify_waiting(self, run_id: str, message: str) -> bool:
        """Announce that run *run_id* waits for review; return whether a notification was shown.

        Nothing is shown when muted or when there is nowhere to show it. Clicking the
        notification emits ``run_requested(run_id)`` for the last run announced.
        """
        if self._muted or self._notifier is None:
            return False
        self._last_run_id = run_id
        self._notifier.notify(NOTIFICATION_TITLE, message)
        return True

    def notify_overdue(self, run_id: str, message: str) -> bool:
        """Remind that run *run_id*'s review is overdue (as notify_waiting, another title)."""
        if self._muted or self._notifier is None:
            return False
        self._last_run_id = run_id
        self._notifier.notify(OVERDUE_TITLE, message)
        return True

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute notifications (the menu's checkable action follows)."""
        if muted == self._muted:
            return
        self._muted = muted
        self.mute_action.setChecked(muted)
        self.muted_changed.emit(muted)

    def hide(self) -> None:
        """Remove the icon from the tray (at quit, so it does not linger)."""
        if self._icon is not None:
            self._icon.hide()

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.show_requested.emit()

    def _on_message_clicked(self) -> None:
        if self._last_run_id is not None:
            self.run_requested.emit(self._last_run_id)
        else:
            self.show_requested.emit()
