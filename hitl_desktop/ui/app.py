"""The composition root: settings → engine (with the `db-change` task) → bridge → console →
window and tray, on a qasync loop (the Qt loop is the asyncio loop; the engine runs in it).

`ConsoleApp` builds and wires everything and is what the tests and the benchmark start too;
`main()` is `hitl-desktop` / `python -m hitl_desktop`.

On a team store (PostgreSQL) the console opens the store as it is (``migrate=False``: the
store's owner migrates it once), with the password from the keyring put into the URL in memory
only; review only (the setting or ``--review-only``), it executes nothing and workers do. A store
that cannot be opened at start is named with its problem in a dialog offering Settings (fix it
and the console starts again) or Quit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication, QMessageBox

from .. import secrets
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
from .reminders import Reminders
from .runs_model import RunsModel
from .settings_dialog import SettingsDialog
from .team_store import TEST_TIMEOUT_S, describe_failure, os_account
from .tray import Tray

log = logging.getLogger("hitl_desktop.ui")

STATE_FILE = "window.ini"
TITLE = "hitl-desktop — approvals"
MAX_STARTS = 20
"""How many times one launch starts the console again after the store was fixed in Settings."""


class StoreUnavailable(RuntimeError):
    """The console could not open its store; the message names the store and the problem."""

    def __init__(self, store: str, problem: str) -> None:
        super().__init__(f"cannot open the store {store}: {problem}")
        self.store = store
        self.problem = problem


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
        review_only: bool = False,
    ) -> None:
        self.settings = settings
        self.demo = demo
        self.review_only = review_only or settings.review_only
        self._reviewer = reviewer
        self._keyring_problem: str | None = None
        # What runs may reach comes from this machine's profiles and keyring, never from a run.
        self.targets = targets or local_targets(settings)
        self.engine = engine or Engine(
            self._connect_url(),
            tasks=[db_change_task(self.targets)],
            default_token_timeout=settings.token_timeout,
            migrate=settings.team_store_url is None,
            execute=not self.review_only,
        )
        self.model = RunsModel()
        self.console = Console(
            self.engine,
            self.model,
            settings,
            reviewer=reviewer or _user(settings),
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
        self.window.setWindowTitle(window_title(settings, self.review_only))
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
        self.reminders = Reminders(self.engine, parent=self.window)
        self.reminders.overdue.connect(lambda _run, text: self.window.show_message(text))
        if self.tray is not None:
            self.reminders.overdue.connect(self.tray.notify_overdue)
        self._apply_close_to_tray()
        self.quit = asyncio.Event()
        self.window.quit_requested.connect(self.quit.set)
        self._dialog_task: asyncio.Future[None] | None = None

    def _connect_url(self) -> str:
        """The store's URL to connect with: a team store's password from the keyring put in
        (in memory only; the settings and everything shown keep the URL without it)."""
        url = self.settings.store_url
        if self.settings.team_store_url is None:
            return url
        try:
            return secrets.with_store_password(url)
        except secrets.SecretsUnavailable as exc:
            self._keyring_problem = str(exc)  # said if the server then wants a password
            return url

    def _apply_close_to_tray(self) -> None:
        has_tray = self.tray is not None and self.tray.has_tray
        self.window.hide_on_close = bool(has_tray and self.settings.close_to_tray)

    async def start(self, *, show: bool = True) -> None:
        """Show the window, start the engine, fill the table (and seed the demo)."""
        if show:
            self.window.show()
        self.bridge.start()
        try:
            if self.settings.team_store_url is not None:  # a server may not answer at all
                await asyncio.wait_for(self.engine.open(), TEST_TIMEOUT_S)
            await self.engine.start()
        except Exception as exc:
            self.window.set_engine_state("engine failed to start")
            problem = describe_failure(self.engine.url, exc)
            if self._keyring_problem is not None:
                problem += f" ({self._keyring_problem})"
            raise StoreUnavailable(redact_url(self.settings.store_url), problem) from None
        self.window.set_engine_state(
            "review only: workers execute the runs" if self.review_only else "engine running"
        )
        await self.console.start()
        self.reminders.start()
        if self.tray is not None and self.tray.unavailable_message:
            self.window.show_message(self.tray.unavailable_message)
        if self.demo:
            await seed_demo(self.engine, self.console.settings)
        # Everything made so far (modules, Qt wrappers, the first page) lives as long as the
        # app: keep it out of full garbage collections, which otherwise stall the GUI.
        gc.freeze()

    async def stop(self) -> None:
        self.reminders.stop()
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
        restart = _restart_needed(self.settings, saved)
        self.settings = saved
        if self._reviewer is None:
            self.console.reviewer = _user(saved)
        self.console.set_settings(saved)
        self.window.set_target(_active_target(saved))
        if self.tray is not None:
            self.tray.set_muted(not saved.notifications)
        self._apply_close_to_tray()
        message = f"Settings saved to {saved.settings_file}"
        if restart:
            message += f"; restart hitl-desktop to use the {restart}"
        self.window.show_message(message)


def _restart_needed(before: Settings, after: Settings) -> str | None:
    """What of the saved settings applies only from the next start (None: nothing)."""
    if after.store_url != before.store_url:
        return "new store"
    if after.review_only != before.review_only:
        return "review-only setting"
    return None


def window_title(settings: Settings, review_only: bool) -> str:
    """The window's title: which team store (without a password), and when review only."""
    title = TITLE
    if settings.team_store_url is not None:
        title += f" — {display_url(settings.team_store_url)}"
    return f"{title} (review only)" if review_only else title


def _active_target(settings: Settings) -> str | None:
    profile = settings.active_profile()
    return None if profile is None else profile.target_url


def _user(settings: Settings) -> str:
    """The reviewer named with decisions: the display name when set, else the OS account (the
    store records the database role or OS account beside it whatever this says)."""
    return settings.display_name or os_account()


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
        "$HITL_STORE, else the team store of the settings, else runs.db in the data directory",
    )
    parser.add_argument(
        "--review-only",
        action="store_true",
        help="execute nothing (workers do): list, review and decide runs, and request changes",
    )
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    settings = load_settings(environ)
    if args.demo:
        settings = prepare_demo(settings)
    if args.store:
        settings = replace(settings, store_url=as_store_url(args.store))
    if args.demo or args.store:  # this launch's store: saving keeps the file's team store
        settings = replace(settings, overridden=settings.overridden | {"store_url"})
    return settings


async def run_console(
    settings: Settings,
    *,
    demo: bool = False,
    review_only: bool = False,
    started: Callable[[ConsoleApp], None] | None = None,
    **options: Any,
) -> int:
    """Run the console until Quit; 0, or 1 when its store cannot be opened and the user quits.

    A store that cannot be opened is named in a dialog with Settings and Quit; settings saved
    there start the console again (at most `MAX_STARTS` times). *started* is told of each
    console made (to route Ctrl+C to it); *options* go to `ConsoleApp`."""
    for _ in range(MAX_STARTS):
        console = ConsoleApp(settings, demo=demo, review_only=review_only, **options)
        if started is not None:
            started(console)
        try:
            await console.run()
            return 0
        except StoreUnavailable as exc:
            print(f"hitl-desktop: {exc}", file=sys.stderr)
            fixed = await _store_failed(settings, exc)
            if fixed is None:
                return 1
            settings = fixed
    return 1


async def _store_failed(settings: Settings, failure: StoreUnavailable) -> Settings | None:
    """Say why the store cannot be opened; the settings saved to fix it, or None to quit."""
    box = QMessageBox(
        QMessageBox.Icon.Critical,
        "hitl-desktop",
        f"hitl-desktop cannot open its store {failure.store}:\n\n{failure.problem}\n\n"
        "Fix it in Settings, or quit.",
    )
    box.setObjectName("storeFailure")
    settings_button = box.addButton("Settings…", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    await ask(box)
    if box.clickedButton() is not settings_button:
        return None
    dialog = SettingsDialog(settings)
    if await ask(dialog) != SettingsDialog.DialogCode.Accepted:
        return None
    return dialog.result_settings


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
    consoles: list[ConsoleApp] = []

    def started(console: ConsoleApp) -> None:
        consoles[:] = [console]

    for number in (signal.SIGINT, signal.SIGTERM):  # Ctrl+C or a kill: stop cleanly
        signal.signal(number, lambda *_: consoles[-1].quit.set() if consoles else None)
    with loop:
        try:
            status: int = loop.run_until_complete(
                run_console(settings, demo=args.demo, review_only=args.review_only, started=started)
            )
            return status
        except RuntimeError as exc:
            box = QMessageBox(QMessageBox.Icon.Critical, "hitl-desktop", str(exc))
            plain_box(box).exec()
            print(f"hitl-desktop: {exc}", file=sys.stderr)
            return 1
