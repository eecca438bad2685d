"""The composition root: settings → engine (with the `db-change` task) → bridge → console →
window and tray, on a qasync loop (the Qt loop is the asyncio loop; the engine runs in it).

`ConsoleApp` builds and wires everything and is what the tests and the benchmark start too;
`main()` is `hitl-desktop` / `python -m hitl_desktop`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMessageBox

from ..agent import DEMO_REQUESTS, Targets, db_change_task
from ..application import local_targets
from ..config import ConfigError, Settings, load_settings, process_environment
from ..engine import Engine
from ..units.urls import as_store_url, display_url, redact_url
from .bridge import EngineBridge
from .console import Console
from .demo import prepare_demo, seed_demo
from .dialogs import ask
from .display import display_problem
from .icons import app_icon
from .main_window import MainWindow
from .plain_text import plain_box
from .runs_model import RunsModel
from .settings_dialog import SettingsDialog
from .tray import Tray

log = logging.getLogger("hitl_desktop.ui")

STATE_FILE = "window.ini"


class ConsoleApp:
    """Everything the console is made of, wired together; `start()` / `stop()` it in the loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        demo: bool = False,
        reviewer: str | None = None,
        linger_s: float = 2.5,
        tray: bool = True,
        engine: Engine | None = None,
        targets: Targets | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.demo = demo
        # What runs may reach comes from this machine's profiles and keyring, never from a run.
        self.targets = targets or local_targets(settings)
        self.engine = engine or Engine(
            settings.store_url,
            tasks=[db_change_task(self.targets)],
            default_token_timeout=settings.token_timeout,
        )
        self.model = RunsModel()
        self.console = Console(
            self.engine,
            self.model,
            settings,
            reviewer=reviewer or _user(),
            targets=self.targets,
            linger_s=linger_s,
        )
        self.bridge = EngineBridge(self.engine)
        self.bridge.events.connect(self.console.on_events)
        active = settings.active_profile()
        examples = DEMO_REQUESTS if active is None or active.proposer == "offline" else ()
        self.window = MainWindow(
            self.console,
            store=display_url(settings.store_url),
            state_file=state_file if state_file is not None else settings.data_dir / STATE_FILE,
            examples=examples,
        )
        self.window.setWindowIcon(app_icon())
        self.window.settings_requested.connect(self._open_settings)
        self.tray: Tray | None = None
        if tray:
            self.tray = Tray(self.window, muted=not settings.notifications)
            self.tray.show_requested.connect(self.window.show_window)
            self.tray.run_requested.connect(self.window.show_run)
            self.tray.quit_requested.connect(self.window.quit_requested)
            self.console.counts_changed.connect(
                lambda counts: (
                    self.tray.set_waiting(counts.get("WAITING", 0)) if self.tray else None
                )
            )
            self.console.run_waiting.connect(self.tray.notify_waiting)
        self._apply_close_to_tray()
        self.quit = asyncio.Event()
        self.window.quit_requested.connect(self.quit.set)
        self._dialog_task: asyncio.Future[None] | None = None

    def _apply_close_to_tray(self) -> None:
        has_tray = self.tray is not None and self.tray.has_tray
        self.window.hide_on_close = bool(has_tray and self.settings.close_to_tray)

    async def start(self, *, show: bool = True) -> None:
        """Show the window, start the engine, fill the table (and seed the demo)."""
        if show:
            self.window.show()
        self.bridge.start()
        try:
            await self.engine.start()
        except Exception as exc:
            self.window.set_engine_state("engine failed to start")
            store = redact_url(self.settings.store_url)
            raise RuntimeError(f"cannot open the store {store}: {exc}") from exc
        self.window.set_engine_state("engine running")
        await self.console.start()
        if self.tray is not None and self.tray.unavailable_message:
            self.window.show_message(self.tray.unavailable_message)
        if self.demo:
            await seed_demo(self.engine, self.console.settings)
        # Everything made so far (modules, Qt wrappers, the first page) lives as long as the
        # app: keep it out of full garbage collections, which otherwise stall the GUI.
        gc.freeze()

    async def stop(self) -> None:
        self.window.save_state()
        await self.console.close()
        await self.bridge.stop()
        await self.engine.stop()
        self.window.set_engine_state("engine stopped")
        if self.tray is not None:
            self.tray.hide()
        self.window.hide_on_close = False
        self.window.close()
        self.targets.close()

    async def run(self) -> None:
        """Start, wait for Quit (window, tray or Ctrl+Q), stop."""
        try:
            await self.start()
            await self.quit.wait()
        finally:
            await self.stop()

    def _open_settings(self) -> None:
        self._dialog_task = asyncio.ensure_future(self._settings_dialog())

    async def _settings_dialog(self) -> None:
        dialog = SettingsDialog(self.console.settings, self.window)
        if await ask(dialog) != SettingsDialog.DialogCode.Accepted:
            return
        saved = dialog.result_settings
        if saved is None:
            return
        self.settings = saved
        self.console.set_settings(saved)
        self.window.set_target(_active_target(saved))
        if self.tray is not None:
            self.tray.set_muted(not saved.notifications)
        self._apply_close_to_tray()
        self.window.show_message(f"Settings saved to {saved.settings_file}")


def _active_target(settings: Settings) -> str | None:
    profile = settings.active_profile()
    return None if profile is None else profile.target_url


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still a name for the decision
        return "reviewer"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hitl-desktop", description="The approval console for database changes."
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use a demo target database and store in the data directory, the offline "
        "proposer, and a few sample requests",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the run store (sqlite:///…, postgresql://…, or a SQLite file path); default: "
        "$HITL_STORE, else runs.db in the data directory",
    )
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    settings = load_settings(environ)
    if args.demo:
        settings = prepare_demo(settings)
    if args.store:
        settings = replace(settings, store_url=as_store_url(args.store))
    return settings


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Start the console; returns the process's exit status."""
    import qasync

    args = parse_args(argv)
    env = process_environment() if environ is None else environ
    problem = display_problem(env)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    try:
        settings = build_settings(args, env)
    except (ConfigError, OSError) as exc:
        print(f"hitl-desktop: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "hitl-desktop"])
    assert isinstance(app, QApplication)
    app.setApplicationName("hitl-desktop")
    app.setQuitOnLastWindowClosed(False)  # Quit is explicit: the window may close to the tray
    app.setWindowIcon(app_icon())
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    console = ConsoleApp(settings, demo=args.demo)
    for number in (signal.SIGINT, signal.SIGTERM):  # Ctrl+C or a kill: stop cleanly
        signal.signal(number, lambda *_: console.quit.set())
    status = 0
    with loop:
        try:
            loop.run_until_complete(console.run())
        except RuntimeError as exc:
            box = QMessageBox(QMessageBox.Icon.Critical, "hitl-desktop", str(exc))
            plain_box(box).exec()
            print(f"hitl-desktop: {exc}", file=sys.stderr)
            status = 1
    return status
