"""The runs table model and its proxy, without any view: rows in, rows out, lazy details."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QPalette

from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.records import RunDetails, RunRow
from hitl_desktop.ui.runs_model import (
    EXPIRES_IN,
    FILTER_ROLE,
    REQUEST,
    ROWS,
    SORT_ROLE,
    STATUS,
    TABLES,
    TAGS,
    WAITING_SINCE,
    RunsModel,
    RunsProxy,
)

NOW = 1_800_000_000.0


def row(n: int, status: RunStatus = RunStatus.WAITING, **kw: object) -> RunRow:
    values: dict[str, object] = {
        "id": f"run_{n:06d}",
        "task": "db-change",
        "status": status,
        "request": f"Refund ${n} on invoice {1000 + n}",
        "created_at": NOW - 1000 + n,  # higher n: newer
        "updated_at": NOW - 500 + n,
        "tags": ("db-change",),
        "token_id": f"tok_{n}" if status is RunStatus.WAITING else None,
        "outcome": None,
        "error": None,
    }
    values.update(kw)
    return RunRow(**values)  # type: ignore[arg-type]


@pytest.fixture
def model(qapp: object) -> RunsModel:
    return RunsModel(clock=lambda: NOW)


def ids(model: RunsModel) -> list[str]:
    return [r.id for r in model.rows()]


def test_rows_are_newest_first_and_upsert_inserts_at_their_place(model: RunsModel) -> None:
    model.reset([row(1), row(3)])
    model.upsert([row(2), row(4)])
    assert ids(model) == ["run_000004", "run_000003", "run_000002", "run_000001"]
    assert model.row_of("run_000002") == 2 and model.row_of("nope") == -1


def test_upsert_replaces_a_known_run_and_forgets_its_details_when_its_status_moves(
    model: RunsModel, qtbot: object
) -> None:
    model.reset([row(1)])
    model.set_details({"run_000001": RunDetails("s", ("refunds",), 1, (("insert", 1),), NOW, ())})
    changed: list[int] = []
    model.dataChanged.connect(lambda a, b, *_: changed.append(a.row()))
    model.upsert([row(1, request="same run, new text")])
    assert model.get("run_000001").request == "same run, new text"  # type: ignore[union-attr]
    assert changed == [0] and model.details("run_000001") is not None
    model.upsert([row(1, RunStatus.COMPLETED)])
    assert model.details("run_000001") is None
    assert model.rowCount() == 1


def test_a_burst_of_new_runs_on_top_is_one_insertion(model: RunsModel) -> None:
    model.reset([row(n) for n in range(100)])
    inserted: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    model.upsert([row(n) for n in range(100, 150)])
    assert inserted == [(0, 49)]
    assert model.rowCount() == 150 and ids(model)[0] == "run_000149"


def test_remove_takes_contiguous_ranges_from_the_bottom_up(model: RunsModel) -> None:
    model.reset([row(n) for n in range(10)])
    removed: list[tuple[int, int]] = []
    model.rowsRemoved.connect(lambda _p, first, last: removed.append((first, last)))
    model.remove(["run_000009", "run_000008", "run_000003", "unknown"])
    assert removed == [(6, 6), (0, 1)]
    assert ids(model) == [f"run_{n:06d}" for n in (7, 6, 5, 4, 2, 1, 0)]


def test_fetch_more_asks_once_until_the_page_arrives(model: RunsModel) -> None:
    asked: list[bool] = []
    model.fetch_wanted.connect(lambda: asked.append(True))
    model.reset()
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert asked == [True]
    assert model.append_page([row(5), row(4)], exhausted=False) == 2
    model.fetchMore(QModelIndex())
    assert asked == [True, True]
    # The next page: older rows go below; rows already present are skipped.
    assert model.append_page([row(4), row(3)], exhausted=True) == 1
    assert ids(model) == ["run_000005", "run_000004", "run_000003"]
    assert not model.canFetchMore(QModelIndex())
    assert model.oldest == row(3).created_at


def test_covers_is_the_loaded_range(model: RunsModel) -> None:
    model.reset([row(10), row(20)])
    assert model.covers(row(15)) and model.covers(row(30)) and not model.covers(row(5))
    model.append_page([], exhausted=True)
    assert model.covers(row(5))


def test_painting_a_row_asks_for_its_details_once_and_sort_and_filter_never_do(
    model: RunsModel, qtbot: object
) -> None:
    model.reset([row(1), row(2)])
    wanted: list[list[str]] = []
    model.details_wanted.connect(wanted.append)
    for r in range(2):
        model.index(r, TABLES).data(SORT_ROLE)
        model.index(r, 0).data(FILTER_ROLE)
    qtbot.wait(20)  # type: ignore[attr-defined]
    assert wanted == []
    model.index(0, TABLES).data()
    model.index(0, ROWS).data()
    model.index(1, TABLES).data()
    qtbot.waitUntil(lambda: bool(wanted))  # type: ignore[attr-defined]
    assert sorted(wanted[0]) == ["run_000001", "run_000002"]
    model.index(0, TABLES).data()
    qtbot.wait(20)  # type: ignore[attr-defined]
    assert len(wanted) == 1


def test_cells_show_the_details_and_a_live_countdown(qapp: object) -> None:
    clock = [NOW]
    model = RunsModel(clock=lambda: clock[0])
    model.reset([row(1, tags=("db-change", "urgent"))])
    model.set_details(
        {
            "run_000001": RunDetails(
                "Refund $1.00", ("refunds",), 1, (("insert", 1),), NOW + 3725, ("refunds",)
            )
        }
    )

    def cell(column: int, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return model.index(0, column).data(role)

    assert cell(TABLES) == "refunds" and cell(ROWS) == "1 insert" and cell(STATUS) == "waiting"
    assert cell(TAGS) == "urgent"  # the task's own tag and the tables are shown elsewhere
    assert cell(EXPIRES_IN) == "1h 02m"
    assert cell(WAITING_SINCE) == time.strftime("%H:%M:%S", time.localtime(row(1).updated_at))
    assert "Agent: Refund $1.00" in str(cell(REQUEST, Qt.ItemDataRole.ToolTipRole))
    assert cell(EXPIRES_IN, Qt.ItemDataRole.ForegroundRole) is None
    clock[0] = NOW + 3725 - 90
    assert cell(EXPIRES_IN) == "1m 30s"
    assert cell(EXPIRES_IN, Qt.ItemDataRole.ForegroundRole) is not None  # red: under 5 minutes
    clock[0] = NOW + 4000
    assert cell(EXPIRES_IN) == "expired"


def test_a_leaving_row_is_greyed_out(model: RunsModel, qapp: object) -> None:
    model.reset([row(1)])
    model.mark_leaving("run_000001")
    colour = model.index(0, REQUEST).data(Qt.ItemDataRole.ForegroundRole)
    assert colour == qapp.palette().color(  # type: ignore[attr-defined]
        QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text
    )
    model.upsert([row(1)])  # back in the view (e.g. a second token): no longer leaving
    assert not model.is_leaving("run_000001")


def test_the_proxy_filters_on_request_state_and_tables_case_insensitively(
    model: RunsModel,
) -> None:
    proxy = RunsProxy()
    proxy.setSourceModel(model)
    model.reset([row(1), row(2, RunStatus.FAILED, error="boom"), row(3)])
    model.set_details({"run_000003": RunDetails(None, ("Invoices",), 1, (), None, ())})
    proxy.setFilterFixedString("FAILED")
    assert [proxy.run_id(r) for r in range(proxy.rowCount())] == ["run_000002"]
    proxy.setFilterFixedString("invoices")  # a table, known once the details are read
    assert [proxy.run_id(r) for r in range(proxy.rowCount())] == ["run_000003"]
    proxy.setFilterFixedString("INVOICE")
    assert proxy.rowCount() == 3
    proxy.setFilterFixedString("refund $3 ")
    assert [proxy.run_id(r) for r in range(proxy.rowCount())] == ["run_000003"]
    proxy.setFilterFixedString("")
    assert proxy.row_of("run_000001") == 2


def fast_row(n: int) -> RunRow:
    return RunRow(f"run_{n:06d}", "db-change", RunStatus.WAITING, "r", n, n, (), "t", None, None)


def test_a_hundred_thousand_rows_load_and_take_a_burst_quickly(model: RunsModel) -> None:
    rows = [fast_row(n) for n in range(100_000)]
    started = time.perf_counter()
    model.reset(rows)
    model.upsert([fast_row(n) for n in range(100_000, 101_000)])
    assert time.perf_counter() - started < 2.0
    assert model.rowCount() == 101_000 and model.row_of("run_100999") == 0
