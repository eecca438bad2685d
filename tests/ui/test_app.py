"""The composition root: no display, the demo, the window's remembered geometry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hitl_desktop.agent import TargetProfile
from hitl_desktop.config import Settings, save_settings
from hitl_desktop.engine import RunStatus
from hitl_desktop.ui.app import ConsoleApp, build_settings, parse_args
from hitl_desktop.ui.display import display_problem
from hitl_desktop.ui.settings_dialog import SettingsDialog

from .helpers import open_dialog, running_console, until


def test_no_display_is_named_only_on_linux_without_x_wayland_or_a_qt_platform() -> None:
    assert "xvfb-run -a make demo" in (display_problem({}, "linux") or "")
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "darwin") is None


def test_the_demo_without_a_display_says_how_to_run_it_and_fails(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["HITL_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "hitl_desktop", "--demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "xvfb-run -a make demo" in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was created


def demo_env(tmp_path: Path, template: Path) -> dict[str, str]:
    """The environment of a demo launch, its target copied in (generating it takes seconds)."""
    folder = tmp_path / "data" / "demo"
    folder.mkdir(parents=True)
    shutil.copyfile(template, folder / "target.db")
    return {"HITL_DATA_DIR": str(tmp_path / "data"), "HITL_CONFIG_DIR": str(tmp_path / "cfg")}


def test_demo_settings_live_in_the_data_dir_and_are_not_saved(
    tmp_path: Path, demo_template: Path
) -> None:
    env = demo_env(tmp_path, demo_template)
    settings = build_settings(parse_args(["--demo"]), env)
    folder = tmp_path / "data" / "demo"
    assert settings.store_url.endswith(f"{folder}/runs.db")
    active = settings.active_profile()
    assert active is not None and active.name == "demo"
    assert active.target_url.endswith(f"{folder}/target.db") and active.proposer == "offline"
    assert active.deny == ("customers.password_hash",)
    assert (folder / "target.db").is_file()
    assert "profile" in settings.overridden and settings.target_url is None
    save_settings(settings)  # the demo profile is the launch's, never saved as the choice
    assert "demo" not in settings.settings_file.read_text()
    other = build_settings(parse_args(["--store", str(tmp_path / "x.db")]), env)
    assert other.store_url == f"sqlite:///{tmp_path / 'x.db'}"


async def test_the_demo_waits_within_seconds_and_a_relaunch_does_not_duplicate(
    tmp_path: Path, demo_template: Path
) -> None:
    env = demo_env(tmp_path, demo_template)
    settings = build_settings(parse_args(["--demo"]), env)
    async with running_console(settings, demo=True) as app:
        await until(lambda: sum(r.waiting for r in app.model.rows()) == 6, what="6 waiting")
        first = {r.id for r in app.model.rows()}
    assert settings.demo_dir.is_dir()
    async with running_console(settings, demo=True) as app:
        await until(lambda: len(app.model.rows()) == 6, what="the table")
        assert {r.id for r in app.model.rows()} == first
        counts = await app.engine.count_runs()
        assert counts == {RunStatus.WAITING.value: 6}


async def test_the_window_remembers_its_geometry(settings: Settings) -> None:
    async with running_console(settings) as app:
        app.window.resize(700, 500)  # within the offscreen screen (800×600)
        app.window.splitter.setSizes([200, 400])
    state = settings.data_dir / "window.ini"
    assert state.is_file()
    again = ConsoleApp(settings, tray=False)
    try:
        assert (again.window.width(), again.window.height()) == (700, 500)
    finally:
        again.window.deleteLater()


async def test_settings_open_from_the_window_and_apply_when_saved(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_console(settings) as app:
        QTest.mouseClick(app.window.settings_button, Qt.MouseButton.LeftButton)
        dialog = await until(lambda: open_dialog(SettingsDialog), what="the settings dialog")
        saved = replace(settings, target_url=f"sqlite:///{tmp_path / 'other.db'}")
        monkeypatch.setattr(SettingsDialog, "result_settings", property(lambda _self: saved))
        dialog.accept()
        await until(lambda: app.console.settings is saved, what="the new settings in use")
        assert "other.db" in app.window.target_label.text()
        change = app.console.change_request("Void invoice 7")
        assert change.profile == "default"
        assert change.target_id == TargetProfile("default", saved.target_url).target_id


async def test_a_run_that_starts_waiting_is_announced_with_its_summary(
    settings: Settings,
) -> None:
    async with running_console(settings) as app:
        announced: list[tuple[str, str]] = []
        app.console.run_waiting.connect(lambda run_id, text: announced.append((run_id, text)))
        run = await app.console.new_request("Refund $20 on invoice 1042")
        await until(lambda: announced, what="the announcement")
        assert announced == [(run.id, "Refund $20.00 on invoice INV-001042 awaits approval")]
