"""The app icon and the tray icon with a count badge, rendered from the SVGs in ``resources/``."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtSvg import QSvgRenderer

from ..resources import resource_path

__all__ = ["APP_ICON", "TRAY_ICON", "app_icon", "badge_text", "tray_icon"]

APP_ICON = "hitl-desktop.svg"
TRAY_ICON = "hitl-desktop-tray.svg"

_APP_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)
_TRAY_SIZES = (16, 22, 24, 32, 48, 64)
_BADGE = QColor("#e5484d")
_BADGE_TEXT = QColor("#ffffff")
_FALLBACK = QColor("#3a66e8")


def app_icon() -> QIcon:
    """The application icon, at the sizes window managers and docks ask for."""
    icon = QIcon()
    for size in _APP_SIZES:
        icon.addPixmap(_render(APP_ICON, size))
    return icon


def tray_icon(count: int = 0) -> QIcon:
    """The tray icon; with a red badge showing *count* (``99+`` above 99) when it is positive."""
    icon = QIcon()
    for size in _TRAY_SIZES:
        pixmap = _render(TRAY_ICON, size)
        if count > 0:
            _draw_badge(pixmap, badge_text(count))
        icon.addPixmap(pixmap)
    return icon


def badge_text(count: int) -> str:
    """What the badge says for *count*: the number, capped at ``99+``."""
    return "99+" if count > 99 else str(count)


def _render(name: str, size: int) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer = QSvgRenderer(str(resource_path(name)))
    if renderer.isValid():
        renderer.render(painter, QRectF(0, 0, size, size))
    else:
        _draw_fallback(painter, size)  # resources missing (e.g. a bare wheel): still an icon
    painter.end()
    return pixmap


def _draw_fallback(painter: QPainter, size: int) -> None:
    """A plain rounded square with a check mark, drawn without any file."""
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(_FALLBACK)
    painter.drawRoundedRect(QRectF(0, 0, size, size), size * 0.22, size * 0.22)
    pen = QPen(QColor("#ffffff"), max(1.5, size * 0.1))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    path = QPainterPath(QPointF(size * 0.28, size * 0.52))
    path.lineTo(size * 0.44, size * 0.68)
    path.lineTo(size * 0.74, size * 0.36)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(path)


def _draw_badge(pixmap: QPixmap, text: str) -> None:
    """A red pill in the top-right corner holding *text*, with a thin white ring for contrast."""
    size = pixmap.width()
    height = max(7.0, size * 0.5)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(max(6, round(height * 0.72)))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    painter.setFont(font)
    # Below 22 px, or when the number cannot fit over most of the icon even in a smaller font,
    # a red dot says enough (the tooltip has the number).
    limit = size * (1.0 if size >= 32 else 0.8)
    width = max(height, painter.fontMetrics().horizontalAdvance(text) + height * 0.4)
    while width > limit and font.pixelSize() > max(6, round(height * 0.5)):
        font.setPixelSize(font.pixelSize() - 1)
        painter.setFont(font)
        width = max(height, painter.fontMetrics().horizontalAdvance(text) + height * 0.4)
    show_text = size >= 22 and width <= limit
    if not show_text:
        width = height
    rect = QRectF(size - width, 0, width, height)
    ring = max(1.0, size / 32)
    painter.setPen(QPen(QColor("#ffffff"), ring))
    painter.setBrush(_BADGE)
    painter.drawRoundedRect(
        rect.adjusted(ring / 2, ring / 2, -ring / 2, -ring / 2), height / 2, height / 2
    )
    if show_text:
        painter.setPen(_BADGE_TEXT)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
