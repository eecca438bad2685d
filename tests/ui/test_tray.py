"""The tray: count badge and tooltip, notifications through the seam, menu signals, no tray."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QSystemTrayIcon

from hitl_desktop import resources
from hitl_desktop.resources import resource_path
from hitl_desktop.ui import icons
from hitl_desktop.ui.icons import app_icon, badge_text, tray_icon
from hitl_desktop.ui.tray import NOTIFICATION_TITLE, Tray, waiting_text

MESSAGE = "Refund of $20.00 on invoice 1042 awaits approval"


class RecordingNotifier:
    """The notification seam: records what would have been shown."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []

    def notify(self, title: str, message: str) -> None:
        self.shown.append((title, message))


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def tray(qapp, notifier: RecordingNotifier) -> Tray:
    return Tray(notifier=notifier)


def test_a_new_waiting_run_raises_a_notification(tray: Tray, notifier: RecordingNotifier):
    assert tray.notify_waiting("run_1", MESSAGE) is True
    assert notifier.shown == [(NOTIFICATION_TITLE, MESSAGE)]


def test_muted_raises_none_and_unmuting_restores_them(
    tray: Tray, notifier: RecordingNotifier, qtbot
):
    with qtbot.waitSignal(tray.muted_changed) as changed:
        tray.mute_action.trigger()  # the menu's checkable action
    assert changed.args == [True]
    assert tray.muted and tray.mute_action.isChecked()
    assert tray.notify_waiting("run_1", MESSAGE) is False
    assert notifier.shown == []

    with qtbot.waitSignal(tray.muted_changed) as changed:
        tray.set_muted(False)
    assert changed.args == [False]
    assert not tray.mute_action.isChecked()
    tray.notify_waiting("run_2", MESSAGE)
    assert len(notifier.shown) == 1


def test_starting_muted_follows_the_notifications_setting(qapp, notifier: RecordingNotifier):
    tray = Tray(muted=True, notifier=notifier)
    assert tray.mute_action.isChecked()
    assert tray.notify_waiting("run_1", MESSAGE) is False
    assert notifier.shown == []


def test_set_muted_to_the_same_state_emits_nothing(tray: Tray, qtbot):
    with qtbot.assertNotEmitted(tray.muted_changed):
        tray.set_muted(False)


def test_menu_actions_emit_the_signals(tray: Tray, qtbot):
    assert [a.text() for a in tray.menu.actions() if not a.isSeparator()] == [
        "Show",
        "Mute notifications",
        "Quit",
    ]
    with qtbot.waitSignal(tray.show_requested):
        tray.show_action.trigger()
    with qtbot.waitSignal(tray.quit_requested):
        tray.quit_action.trigger()


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "No runs waiting for review"), (1, "1 run waiting for review"), (3, "3 runs")],
)
def test_set_waiting_updates_the_tooltip(tray: Tray, count: int, text: str):
    tray.set_waiting(count)
    assert tray.waiting == count
    assert text in tray.tooltip
    assert tray.tooltip == waiting_text(count)


def test_no_tray_for_real_offscreen(qapp, qtbot):
    # The offscreen platform has no system tray: the class works and says so, once, to the window.
    if Tray.available():
        pytest.skip("this platform has a system tray (tests normally run offscreen)")
    tray = Tray()
    assert not tray.has_tray
    assert tray.icon is None
    assert "No system tray" in (tray.unavailable_message or "")
    tray.set_waiting(5)
    assert tray.tooltip == "5 runs waiting for review"
    assert tray.notify_waiting("run_1", MESSAGE) is False  # nowhere to show it; no crash
    with qtbot.waitSignal(tray.quit_requested):
        tray.quit_action.trigger()
    tray.hide()


def test_with_a_tray_the_icon_carries_the_count_and_a_click_shows_the_run(
    qapp, notifier: RecordingNotifier, qtbot
):
    # Forced on: QSystemTrayIcon is safe to create offscreen, it just is not seen.
    tray = Tray(notifier=notifier, tray_available=True)
    assert tray.has_tray and tray.unavailable_message is None
    icon = tray.icon
    assert icon is not None and icon.contextMenu() is tray.menu
    tray.set_waiting(3)
    assert icon.toolTip() == "3 runs waiting for review"
    assert not icon.icon().isNull()

    tray.notify_waiting("run_7", MESSAGE)
    tray.notify_waiting("run_8", "Plan change for customer 17 awaits approval")
    with qtbot.waitSignal(tray.run_requested) as requested:
        icon.messageClicked.emit()
    assert requested.args == ["run_8"]  # the last one announced is the one on screen
    with qtbot.waitSignal(tray.show_requested):
        icon.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    with qtbot.assertNotEmitted(tray.show_requested):
        icon.activated.emit(QSystemTrayIcon.ActivationReason.Context)
    tray.hide()


def test_a_message_click_before_any_notification_just_shows_the_window(qapp, qtbot):
    tray = Tray(notifier=RecordingNotifier(), tray_available=True)
    assert tray.icon is not None
    with qtbot.waitSignal(tray.show_requested):
        tray.icon.messageClicked.emit()
    tray.hide()


def test_the_default_notifier_is_the_tray_balloon(qapp, monkeypatch: pytest.MonkeyPatch):
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(
        QSystemTrayIcon,
        "showMessage",
        lambda self, title, message, *rest: shown.append((title, message)),
    )
    tray = Tray(tray_available=True)
    assert tray.notify_waiting("run_1", MESSAGE) is True
    assert shown == [(NOTIFICATION_TITLE, MESSAGE)]
    tray.hide()


# ------------------------------------------------------------------ icons and resources


def test_the_icons_render_from_the_svg_resources(qapp):
    assert resource_path(icons.APP_ICON).is_file()
    assert resource_path(icons.TRAY_ICON).is_file()
    icon = app_icon()
    assert not icon.isNull()
    assert {s.width() for s in icon.availableSizes()} >= {16, 32, 64, 256}
    image = icon.pixmap(64, 64).toImage()
    assert image.pixelColor(32, 32).alpha() == 255  # painted, not an empty pixmap


def _badge_pixels(count: int, size: int = 64) -> int:
    image: QImage = tray_icon(count).pixmap(size, size).toImage()
    reds = 0
    for x in range(size // 2, size):
        for y in range(size // 2):
            color = image.pixelColor(x, y)
            if color.red() > 200 and color.green() < 110 and color.blue() < 110:
                reds += 1
    return reds


def test_the_tray_badge_appears_only_with_waiting_runs(qapp):
    assert _badge_pixels(0) == 0
    assert _badge_pixels(3) > 50
    assert _badge_pixels(250) > 50
    assert _badge_pixels(3, size=16) > 0  # a dot at tray sizes


@pytest.mark.parametrize(("count", "text"), [(1, "1"), (99, "99"), (100, "99+"), (5000, "99+")])
def test_badge_text_is_capped(count: int, text: str):
    assert badge_text(count) == text


def test_a_missing_svg_still_gives_an_icon(qapp, monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setattr(icons, "resource_path", lambda name: tmp_path / name)
    icon = app_icon()
    assert icon.pixmap(32, 32).toImage().pixelColor(16, 4).alpha() == 255


def test_resources_come_from_the_checkout_or_the_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    checkout = Path(resources.__file__).resolve().parent.parent / "resources"
    assert resource_path() == checkout
    assert resource_path("hitl-desktop.svg") == checkout / "hitl-desktop.svg"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_path("hitl-desktop.svg") == tmp_path / "resources" / "hitl-desktop.svg"
