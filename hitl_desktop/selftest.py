"""`hitl-desktop --self-test`: prove that this installation works, without a display or a key.

It starts Qt offscreen (unless ``QT_QPA_PLATFORM`` names a platform), loads the app icon,
migrates a temporary store, writes the demo target, and runs one demo request through the
engine API end to end (proposal → token → approval → the refund written in the target). It
also loads what is imported only on demand (the OpenAI client, the database drivers and
dialects), reports the keyring backend (an unusable one is reported, not a failure: a minimal
Linux has none), and shows the main window when the console is there. One line per check::

    ok    store migrated to revision 0003 (41 ms)

Exit status 0 when every mandatory check passed, 1 when one failed, 2 for bad arguments.
Everything happens in a temporary directory; the user's store, settings and keyring are never
touched.

`startup_probe` is the other hook the packaging scripts use: it starts the real console and
prints ``shown_at=<epoch seconds>`` once the main window is on screen, then quits it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .config import default_environment

__all__ = ["DEMO_REQUEST", "Check", "main", "startup_probe"]

Output = TextIO | io.TextIOBase

DEMO_REQUEST = "Refund $20 on invoice 1042"
INVOICE = 1042
SELF_TEST = "self-test"
"""The self-test's own target profile: the demo database it writes in its temporary folder."""
STEP_TIMEOUT_S = 60.0


@dataclass
class Check:
    """One line of the report."""

    status: str  # "ok", "FAIL" or "skip" (an optional check that could not run here)
    what: str
    ms: float | None = None

    def line(self) -> str:
        timing = "" if self.ms is None else f" ({self.ms:.0f} ms)"
        return f"{self.status:<5} {self.what}{timing}"


@dataclass
class Report:
    out: Output
    checks: list[Check] = field(default_factory=list)

    def add(self, status: str, what: str, ms: float | None = None) -> Check:
        check = Check(status, what, ms)
        self.checks.append(check)
        print(check.line(), file=self.out, flush=True)
        return check

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "FAIL"]


class Failed(Exception):
    """A mandatory check did not pass; the message says what was expected and what was seen."""


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the self-test; returns the exit status (0: every mandatory check passed, 1: a check
    failed, 2: bad arguments).

    ``--report FILE`` also writes the report to FILE: a windowed Windows executable has no
    stdout. ``--self-test`` itself is accepted so that a launcher can pass its arguments on.
    """
    parser = argparse.ArgumentParser(
        prog="hitl-desktop --self-test", description="Check that this installation works."
    )
    parser.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", metavar="FILE", help="also write the report to FILE")
    try:
        options = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # --help or a bad argument: argparse has said why
        return 0 if exc.code == 0 else 2
    streams = [out if out is not None else sys.stdout]
    report_file = None
    if options.report:
        report_file = open(options.report, "w", encoding="utf-8")  # noqa: SIM115
        streams.append(report_file)
    try:
        return _main(_Tee(streams))
    finally:
        if report_file is not None:
            report_file.close()


class _Tee(io.TextIOBase):
    """Writes to every stream given; a missing one (``sys.stdout`` is None when windowed) is
    skipped."""

    def __init__(self, streams: Sequence[TextIO | None]) -> None:
        super().__init__()
        self.streams = [s for s in streams if s is not None]

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def _main(stream: Output) -> int:
    started = time.perf_counter()
    report = Report(stream)
    print(f"hitl-desktop self-test ({_where()})", file=stream, flush=True)
    # Invisible unless asked otherwise: QT_QPA_PLATFORM=xcb tests the real display plugin.
    default_environment("QT_QPA_PLATFORM", "offscreen")
    default_environment("QT_API", "pyside6")  # qasync: bind PySide6, whatever else is there
    try:
        with tempfile.TemporaryDirectory(prefix="hitl-self-test-") as tmp:
            _run_checks(report, Path(tmp))
    except Exception as exc:  # a check that crashed rather than failed: still one clear line
        report.add("FAIL", f"self-test aborted: {type(exc).__name__}: {exc}")
        print(traceback.format_exc(), file=stream, flush=True)
    total = time.perf_counter() - started
    if report.failed:
        print(
            f"FAILED: {len(report.failed)} of {len(report.checks)} checks "
            f"({', '.join(c.what.split(':')[0] for c in report.failed)}); total {total:.2f} s",
            file=stream,
            flush=True,
        )
        return 1
    print(f"passed: {len(report.checks)} checks; total {total:.2f} s", file=stream, flush=True)
    return 0


def _where() -> str:
    frozen = "frozen" if getattr(sys, "frozen", False) else "from source"
    return f"{frozen}, Python {sys.version.split()[0]}, {sys.platform}, {sys.executable}"


def _run_checks(report: Report, tmp: Path) -> None:
    qt_start = time.perf_counter()
    from PySide6 import __version__ as pyside_version
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["hitl-desktop"])
    assert isinstance(app, QApplication)
    report.add(
        "ok",
        f"Qt started: PySide6 {pyside_version}, platform {app.platformName()}",
        _ms(qt_start),
    )
    _timed(report, "app icon", lambda: _check_icon())

    import qasync

    # The engine and the console run in the Qt loop, as they do in the app.
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_async_checks(report, tmp))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _check_icon() -> str:
    from PySide6.QtSvg import QSvgRenderer

    from .resources import resource_path
    from .ui.icons import APP_ICON, app_icon

    path = resource_path(APP_ICON)
    if not path.is_file():
        raise Failed(f"{path} is missing (the icon would fall back to a drawn square)")
    if not QSvgRenderer(str(path)).isValid():
        raise Failed(f"{path} is not a valid SVG for QtSvg")
    icon = app_icon()
    sizes = icon.availableSizes()
    if icon.isNull() or not sizes:
        raise Failed("app_icon() is empty")
    return f"app icon loaded from {path} ({len(sizes)} sizes)"


def _timed(report: Report, name: str, fn: Callable[[], str]) -> bool:
    start = time.perf_counter()
    try:
        what = fn()
    except Exception as exc:
        report.add("FAIL", f"{name}: {_reason(exc)}", _ms(start))
        return False
    report.add("ok", what, _ms(start))
    return True


async def _atimed(report: Report, name: str, fn: Callable[[], Awaitable[str]]) -> bool:
    start = time.perf_counter()
    try:
        what = await fn()
    except Exception as exc:
        report.add("FAIL", f"{name}: {_reason(exc)}", _ms(start))
        return False
    report.add("ok", what, _ms(start))
    return True


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


async def _async_checks(report: Report, tmp: Path) -> None:
    from .agent import TargetProfile, Targets, db_change_task
    from .engine import Engine
    from .units.urls import sqlite_url

    store = tmp / "runs.db"
    target = tmp / "target.db"
    targets = Targets({SELF_TEST: TargetProfile(SELF_TEST, sqlite_url(target))})
    engine = Engine(f"sqlite:///{store}", tasks=[db_change_task(targets)])
    try:
        if not await _atimed(report, "store", lambda: _migrate(engine, store)):
            return
        if not await _atimed(report, "demo target", lambda: _demo_target(target)):
            return
        await _atimed(report, "demo request", lambda: _demo_request(engine, targets, target))
        _timed(report, "on-demand imports", _lazy_imports)
        _keyring(report)
        await _main_window(report, engine, tmp, target)
    finally:
        if engine.started:
            await engine.stop()
        targets.close()


async def _migrate(engine: Any, store: Path) -> str:
    await engine.open()
    with sqlite3.connect(store) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    if row is None:
        raise Failed("the store has no alembic_version after migrating")
    return f"store migrated to revision {row[0]}"


async def _demo_target(target: Path) -> str:
    from .agent import create_demo_db

    await asyncio.to_thread(create_demo_db, target)
    return f"demo target written ({target.stat().st_size // 1024} KiB)"


def _refunds(target: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(target) as conn:
        return conn.execute(
            "SELECT id, amount, status FROM refunds WHERE invoice_id = ? ORDER BY id", (INVOICE,)
        ).fetchall()


async def _demo_request(engine: Any, targets: Any, target: Path) -> str:
    from .agent import (
        ChangeRequest,
        Decision,
        Outcome,
        decide,
        request_change,
        review_from_steps,
    )
    from .engine import RunStatus

    before = await asyncio.to_thread(_refunds, target)
    await engine.start()
    run = await request_change(engine, ChangeRequest(DEMO_REQUEST, SELF_TEST))
    run = await engine.wait_for(run.id, timeout=STEP_TIMEOUT_S)
    if run.status != RunStatus.WAITING or run.waiting_token_id is None:
        raise Failed(f"the run is {run.status.value}, not WAITING for a review: {run.error}")
    review = review_from_steps(await engine.get_steps(run.id))
    if review is None:
        raise Failed("the waiting run recorded no proposal")
    await decide(engine, targets, run.waiting_token_id, Decision(True, "self-test"))
    run = await engine.wait_for(
        run.id, (RunStatus.COMPLETED, RunStatus.FAILED), timeout=STEP_TIMEOUT_S
    )
    if run.status != RunStatus.COMPLETED:
        raise Failed(f"the approved run ended {run.status.value}: {run.error}")
    outcome = Outcome.from_json(run.output)
    if outcome.outcome != "applied":
        raise Failed(f"the outcome is {outcome.outcome!r}, not 'applied': {outcome.message}")
    after = await asyncio.to_thread(_refunds, target)
    added = [row for row in after if row not in before]
    if len(added) != 1 or float(added[0][1]) != 20.0:
        raise Failed(f"expected one new $20 refund on invoice {INVOICE}, found {added}")
    return (
        f"demo request {DEMO_REQUEST!r}: proposed, waited, approved, applied "
        f"(refund {added[0][0]} of {added[0][1]} on invoice {INVOICE}, {added[0][2]})"
    )


def _lazy_imports() -> str:
    """What the app imports only on demand, so a frozen bundle can miss it unnoticed."""
    import openai
    import sqlalchemy as sa

    from .agent import OpenAIProposer  # noqa: F401 (the agent loads it on first use)

    loaded = [f"openai {openai.__version__}"]
    for module in ("aiosqlite", "asyncpg", "psycopg", "alembic.op", "alembic.context"):
        __import__(module)
        loaded.append(module)
    import psycopg

    loaded.append(f"psycopg impl {psycopg.pq.__impl__}")
    for url in (
        "sqlite://",
        "sqlite+aiosqlite://",
        "postgresql+asyncpg://",
        "postgresql+psycopg://",
    ):
        sa.make_url(url).get_dialect()
        loaded.append(url.rstrip(":/"))
    return "on-demand imports: " + ", ".join(loaded)


def _keyring(report: Report) -> None:
    """The backend must be queryable; whether it can hold a key depends on the desktop."""
    start = time.perf_counter()
    try:
        from .secrets import backend_info

        info = backend_info()
    except Exception as exc:
        report.add("FAIL", f"keyring: cannot be queried: {_reason(exc)}", _ms(start))
        return
    usable = "usable" if info.usable else f"not usable here ({info.explanation})"
    report.add("ok", f"keyring backend: {info.name} [{info.backend}], {usable}", _ms(start))


async def _main_window(report: Report, engine: Any, tmp: Path, target: Path) -> None:
    """Build the console on the same engine and show its window (offscreen by default)."""
    start = time.perf_counter()
    try:
        from .ui import app as ui_app
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("hitl_desktop.ui"):
            report.add("skip", f"main window: skipped ({exc})")
            return
        report.add("FAIL", f"main window: {_reason(exc)}", _ms(start))
        return
    console_app = None
    try:
        from .config import Settings

        settings = Settings(
            data_dir=tmp / "data",
            store_url=f"sqlite:///{tmp / 'runs.db'}",
            target_url=f"sqlite:///{target}",
            config_dir=tmp / "config",
        )
        console_app = ui_app.ConsoleApp(
            settings, tray=False, engine=engine, state_file=tmp / "window.ini"
        )
        await console_app.start(show=True)
        window = console_app.window
        deadline = time.perf_counter() + STEP_TIMEOUT_S
        while not _exposed(window):
            if time.perf_counter() > deadline:
                raise Failed("the main window was not shown")
            await asyncio.sleep(0.01)
        report.add(
            "ok",
            f"main window shown: {window.windowTitle()!r}, {window.width()}x{window.height()}",
            _ms(start),
        )
    except Exception as exc:
        report.add("FAIL", f"main window: {_reason(exc)}", _ms(start))
    finally:
        if console_app is not None:
            try:
                await console_app.stop()
            except Exception as exc:
                report.add("FAIL", f"main window: stopping the console: {_reason(exc)}")


def _exposed(window: Any) -> bool:
    handle = window.windowHandle()
    return bool(window.isVisible() and handle is not None and handle.isExposed())


# ------------------------------------------------------------------------------ startup probe


def startup_probe(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Start the console as `hitl-desktop` would, with *argv*; when its main window has been
    exposed and painted for the first time, print ``shown_at=<time.time()>`` and quit it.
    ``python_at=<time.time()>`` is printed first, as soon as this function runs.

    The caller takes ``time.time()`` just before launching the process: the difference is the
    time from launch to the main window on screen, imports and store opening included.
    """
    stream = out if out is not None else sys.stdout
    # When Python got control: the rest of the start is imports, the store and Qt.
    print(f"python_at={time.time():.6f}", file=stream, flush=True)
    from .config import process_environment
    from .ui.display import display_problem

    problem = display_problem(process_environment())
    if problem is not None:  # checked before Qt, which would abort without a display
        print(problem, file=sys.stderr)
        return 2
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtGui import QWindow
    from PySide6.QtWidgets import QApplication, QMainWindow

    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--startup-probe"]
    # The console reuses this application (QApplication.instance()), so the filter sees it all.
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "hitl-desktop"])

    class FirstExpose(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.done = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if not self.done and event.type() == QEvent.Type.Expose and isinstance(obj, QWindow):
                window = next(
                    (
                        w
                        for w in QApplication.topLevelWidgets()
                        if isinstance(w, QMainWindow) and w.windowHandle() is obj
                    ),
                    None,
                )
                if window is not None and obj.isExposed():
                    self.done = True
                    # After this event is handled: the first paint happens while handling it.
                    QTimer.singleShot(0, lambda: self._shown(window))
            return False

        def _shown(self, window: QMainWindow) -> None:
            print(f"shown_at={time.time():.6f}", file=stream, flush=True)
            quit_requested = getattr(window, "quit_requested", None)
            if quit_requested is not None:
                quit_requested.emit()
            else:  # a window without the console's Quit signal: nothing to stop cleanly
                stream.flush()
                os._exit(0)

    probe = FirstExpose()
    app.installEventFilter(probe)
    from .__main__ import main as console_main

    status = console_main(args)
    app.removeEventFilter(probe)
    if not probe.done:
        print("startup probe: the main window was never shown", file=sys.stderr)
        return status or 1
    return status
