"""The console with a large system font: no column title is cut."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

from hitl_desktop.config import Settings
from hitl_desktop.ui.main_window import COLUMN_WIDTHS
from hitl_desktop.ui.runs_model import ROWS, TASK

from .helpers import running_console


@pytest.fixture
def large_font(qapp: QApplication) -> Iterator[QFont]:
    app = qapp
    before = app.font()
    font = QFont(before)
    font.setPointSizeF(14.0)
    app.setFont(font)
    yield font
    app.setFont(before)


async def test_every_column_title_fits_with_a_large_font(
    settings: Settings, large_font: QFont
) -> None:
    async with running_console(settings) as app:
        header = app.window.table.horizontalHeader()
        assert header.font().pointSizeF() == large_font.pointSizeF()
        widened = 0
        for column, width in COLUMN_WIDTHS.items():
            assert header.sectionSize(column) >= header.sectionSizeHint(column), column
            widened += header.sectionSize(column) > width
        assert widened, "a 14 pt font should need wider columns than the default widths"
        metrics = app.window.table.fontMetrics()
        for column, text in ((TASK, "db-change"), (ROWS, "1 update")):
            # a cell draws its text inside margins: room for them too
            assert header.sectionSize(column) >= metrics.horizontalAdvance(text) + 12, text
