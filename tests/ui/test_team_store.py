"""A console on a team store: the settings' "Team store" group (tested before saving, its
password to the keyring only, errors that name the problem), the console opening the store
with that password, review only, and a store that cannot be opened at start.

The stores are real PostgreSQL databases on the test server (tests/pg.py), each owned by a
role of its own and migrated by it, as `hitl migrate` run by the store's owner leaves them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from hitl_desktop.agent import db_change_task
from hitl_desktop.config import Settings, load_settings
from hitl_desktop.engine import Engine, RunStatus, migrate_store
from hitl_desktop.secrets import SERVICE
from hitl_desktop.ui.app import ConsoleApp, build_settings, parse_args, run_console
from hitl_desktop.ui.settings_dialog import SettingsDialog
from hitl_desktop.ui.team_store import StoreProblem, check_store, describe_failure
from tests import pg
from tests.keyrings import MemoryKeyring

from .helpers import open_dialog, running_console, until

PASSWORD = "right-pw-7f3a"


@dataclass
class TeamStore:
    url: str
    """As the console is told it: the role, no password."""
    role: str
    name: str


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _new_store(
    prefix: str, *, password: str | None = None, migrate: bool = True
) -> TeamStore:
    """A database owned by a new role of its own (with *password*), migrated by that role."""
    role = f"{prefix}_{uuid.uuid4().hex[:8]}"
    given = "" if password is None else f" PASSWORD '{password}'"
    pg.admin(f'CREATE ROLE "{role}" LOGIN{given}')
    name, admin_url = pg.create_database(f"hitl_{prefix}")
    pg.admin(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
    url = admin_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    if migrate:
        secret = "" if password is None else f":{password}"
        await migrate_store(url.replace(f"{role}@", f"{role}{secret}@"))
    return TeamStore(url, role, name)


def _drop(store: TeamStore) -> None:
    pg.drop_database(store.name)
    pg.admin(f'DROP ROLE IF EXISTS "{store.role}"')


@pytest.fixture
async def team_store() -> AsyncIterator[TeamStore]:
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    store = await _new_store("ana")
    yield store
    _drop(store)


@pytest.fixture
async def unmigrated_store() -> AsyncIterator[TeamStore]:
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    store = await _new_store("bob", migrate=False)
    yield store
    _drop(store)


@pytest.fixture
async def password_store() -> AsyncIterator[TeamStore]:
    """A store whose role the server admits only with its password. The test server trusts
    every role, so a pg_hba.conf line for this role alone is put first (written by the server
    itself, which needs a superuser) and taken out afterwards."""
    server = pg.server_url()
    if not server:
        pytest.skip(pg.SKIP)
    with psycopg.connect(server.replace("+asyncpg", ""), autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if row is None or not row[0]:
            pytest.skip("the test server's role cannot change pg_hba.conf (not a superuser)")
        hba = str(conn.execute("SHOW hba_file").fetchone()[0])
        original = str(conn.execute("SELECT pg_read_file(%s)", (hba,)).fetchone()[0])
        store = await _new_store("cy", password=PASSWORD)
        try:
            rule = f"host all {store.role} 127.0.0.1/32 scram-sha-256\n"
            _write_server_file(conn, hba, rule + original)
            _until_refused(store.url.replace(f"{store.role}@", f"{store.role}:wrong@"))
            yield store
        finally:
            _write_server_file(conn, hba, original)
            _drop(store)


def _write_server_file(conn: psycopg.Connection[Any], path: str, text: str) -> None:
    """Write *path* on the server as the server (a large object exported), then reload."""
    oid = conn.execute("SELECT lo_from_bytea(0, convert_to(%s, 'UTF8'))", (text,)).fetchone()[0]
    conn.execute("SELECT lo_export(%s, %s)", (oid, path))
    conn.execute("SELECT lo_unlink(%s)", (oid,))
    conn.execute("SELECT pg_reload_conf()")


def _until_refused(url: str) -> None:
    """Wait (bounded) until the server has reloaded and refuses *url*'s password."""
    for _ in range(100):
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return
            raise
        time.sleep(0.05)
    raise AssertionError("the server still admits the role without its password")


@pytest.fixture(autouse=True)
def keep_running_without_windows(qapp: QApplication) -> Iterator[None]:
    """As main() has it: closing the last window (a dialog here) does not stop the loop."""
    before = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(before)


@pytest.fixture
def dialog_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        store_url=f"sqlite:///{tmp_path / 'data' / 'runs.db'}",
        config_dir=tmp_path / "config",
    )


def _dialog(qtbot, settings: Settings) -> SettingsDialog:
    dialog = SettingsDialog(settings, environ={})
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _click(button) -> None:
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


async def _tested(dialog: SettingsDialog) -> str:
    group = dialog.team_store
    _click(group.test_button)
    await until(lambda: not group.testing, timeout=20, what="the connection test")
    return group.status_text


# ------------------------------------------------------------------ Test connection


async def test_test_connection_to_a_migrated_store_says_who_it_connects_as(
    qtbot, dialog_settings: Settings, team_store: TeamStore, memory_keyring: MemoryKeyring
) -> None:
    dialog = _dialog(qtbot, dialog_settings)
    dialog.team_store.url_edit.setText(team_store.url)
    status = await _tested(dialog)
    assert status.startswith("Connected to postgresql://")
    assert f"as {team_store.role}: the store is ready" in status
    assert memory_keyring.entries == {}  # a test saves nothing
    assert not dialog_settings.settings_file.exists()


async def test_test_connection_to_an_unmigrated_store_names_hitl_migrate(
    qtbot, dialog_settings: Settings, unmigrated_store: TeamStore, memory_keyring
) -> None:
    dialog = _dialog(qtbot, dialog_settings)
    dialog.team_store.url_edit.setText(unmigrated_store.url)
    status = await _tested(dialog)
    assert f"run `hitl migrate --store {unmigrated_store.url}` once, as the store's owner" in (
        status
    )


async def test_test_connection_to_a_closed_port_names_host_and_port(
    qtbot, dialog_settings: Settings, memory_keyring
) -> None:
    port = _closed_port()
    dialog = _dialog(qtbot, dialog_settings)
    dialog.team_store.url_edit.setText(f"postgresql://ana@127.0.0.1:{port}/hitl")
    assert await _tested(dialog) == f"cannot reach 127.0.0.1:{port}: connection refused"
    assert dialog.team_store.test_button.isEnabled()  # ready for the next try


async def test_a_wrong_password_is_named_and_the_right_one_connects(
    qtbot, dialog_settings: Settings, password_store: TeamStore, memory_keyring
) -> None:
    dialog = _dialog(qtbot, dialog_settings)
    group = dialog.team_store
    group.url_edit.setText(password_store.url)
    group.password_edit.setText("wrong-pw")
    status = await _tested(dialog)
    assert f"refused the role '{password_store.role}': wrong password" in status
    assert "wrong-pw" not in status
    group.password_edit.setText(PASSWORD)
    assert f"as {password_store.role}" in await _tested(dialog)


# ------------------------------------------------------------------ Save


async def test_saving_a_team_store_tests_it_and_keeps_its_password_in_the_keyring_only(
    qtbot, dialog_settings: Settings, password_store: TeamStore, memory_keyring: MemoryKeyring
) -> None:
    dialog = _dialog(qtbot, dialog_settings)
    group = dialog.team_store
    # Typed into the URL, as people paste them: moved to the keyring, the URL saved without.
    with_password = password_store.url.replace("@", f":{PASSWORD}@", 1)
    group.url_edit.setText(with_password)
    group.review_only_check.setChecked(True)
    group.display_name_edit.setText("  Cyril Ode ")
    _click(dialog.save_button)
    saved = await until(lambda: dialog.result_settings, timeout=20, what="the save")
    assert saved.store_url == saved.team_store_url == password_store.url
    assert saved.review_only and saved.display_name == "Cyril Ode"
    assert memory_keyring.entries == {(SERVICE, f"store-password:{password_store.url}"): PASSWORD}
    text = dialog_settings.settings_file.read_text(encoding="utf-8")
    assert PASSWORD not in text
    assert json.loads(text)["store_url"] == password_store.url
    env = {
        "HITL_DATA_DIR": str(dialog_settings.data_dir),
        "HITL_CONFIG_DIR": str(dialog_settings.config_dir),
    }
    again = load_settings(env)
    assert again.store_url == password_store.url and again.review_only


async def test_save_with_a_store_that_cannot_be_reached_saves_nothing(
    qtbot, dialog_settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    port = _closed_port()
    dialog = _dialog(qtbot, dialog_settings)
    group = dialog.team_store
    group.url_edit.setText(f"postgresql://ana@127.0.0.1:{port}/hitl")
    group.password_edit.setText("secret-pw")
    dialog.model_edit.setText("gpt-4.1")
    _click(dialog.save_button)
    await until(lambda: group.status_text.startswith("cannot reach"), timeout=20, what="refusal")
    await until(lambda: not group.testing, what="the test's end")
    assert group.status_text == f"cannot reach 127.0.0.1:{port}: connection refused"
    assert dialog.result_settings is None and dialog.isVisible()
    assert not dialog_settings.settings_file.exists()
    assert memory_keyring.entries == {}


async def test_an_unusable_store_url_is_refused_before_any_connection(
    qtbot, dialog_settings: Settings, memory_keyring
) -> None:
    dialog = _dialog(qtbot, dialog_settings)
    dialog.team_store.url_edit.setText(f"sqlite:///{dialog_settings.data_dir / 'other.db'}")
    _click(dialog.save_button)
    assert "Team store: must be a PostgreSQL URL" in dialog.error_text
    assert not dialog.team_store.testing and dialog.result_settings is None


async def test_a_store_set_for_this_launch_is_shown_but_not_changed_here(
    qtbot, tmp_path: Path, memory_keyring
) -> None:
    env = {"HITL_DATA_DIR": str(tmp_path / "d"), "HITL_CONFIG_DIR": str(tmp_path / "c")}
    settings = build_settings(parse_args(["--store", str(tmp_path / "mine.db")]), env)
    dialog = _dialog(qtbot, settings)
    assert not dialog.team_store.url_edit.isEnabled()
    assert "mine.db" in dialog.team_store.status_text
    dialog.team_store.display_name_edit.setText("Ana")
    _click(dialog.save_button)
    saved = dialog.result_settings
    assert saved is not None and saved.store_url.endswith("mine.db")
    assert json.loads(settings.settings_file.read_text())["store_url"] == ""


# ------------------------------------------------------------------ the console


async def test_the_reviewer_is_the_display_name_else_the_os_account(
    settings: Settings, memory_keyring
) -> None:
    named = ConsoleApp(replace(settings, display_name="Ana Lima"), tray=False)
    plain = ConsoleApp(settings, tray=False)
    try:
        assert named.console.reviewer == "Ana Lima"
        assert plain.console.reviewer not in ("", "Ana Lima")
    finally:
        for app in (named, plain):
            app.window.deleteLater()
            app.targets.close()


async def test_review_only_comes_from_the_setting_or_the_flag(
    settings: Settings, memory_keyring
) -> None:
    assert parse_args(["--review-only"]).review_only and not parse_args([]).review_only
    apps = [
        ConsoleApp(settings, tray=False),
        ConsoleApp(replace(settings, review_only=True), tray=False),
        ConsoleApp(settings, tray=False, review_only=parse_args(["--review-only"]).review_only),
    ]
    try:
        assert [app.engine.execute for app in apps] == [True, False, False]
        assert [app.window.windowTitle().endswith("(review only)") for app in apps] == [
            False,
            True,
            True,
        ]
    finally:
        for app in apps:
            app.window.deleteLater()
            app.targets.close()


async def test_a_review_only_console_on_a_team_store_executes_nothing_workers_do(
    settings: Settings, password_store: TeamStore, memory_keyring: MemoryKeyring
) -> None:
    from hitl_desktop import secrets

    secrets.set_store_password(password_store.url, PASSWORD)
    team = replace(settings, store_url=password_store.url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = ConsoleApp(
        team,
        reviewer="tester",
        linger_s=0.0,
        tray=False,
        review_only=parse_args(["--review-only"]).review_only,
    )
    await app.start()
    try:
        assert app.engine.execute is False and app.engine.actor == password_store.role
        assert "review only" in app.window.engine_label.text()
        title = app.window.windowTitle()
        assert title.endswith("(review only)") and password_store.role in title
        assert PASSWORD not in title and PASSWORD not in app.window.store_label.text()
        run = await app.console.new_request("Refund $20 on invoice 1042")
        await asyncio.sleep(0.5)  # an executing engine picks a run up within milliseconds
        assert (await app.engine.get_run(run.id)).status == RunStatus.QUEUED
        # A worker on the same store executes it, and the console sees it wait for review.
        worker_url = password_store.url.replace("@", f":{PASSWORD}@", 1)
        async with Engine(worker_url, tasks=[db_change_task(app.targets)], migrate=False) as w:
            await w.wait_for(run.id, ["WAITING"], timeout=30)
            await until(
                lambda: any(row.id == run.id and row.waiting for row in app.model.rows()),
                timeout=10,
                what="the console to show the run waiting",
            )
    finally:
        await app.stop()


async def test_the_console_opens_a_team_store_with_the_keyrings_password(
    settings: Settings, password_store: TeamStore, memory_keyring: MemoryKeyring
) -> None:
    from hitl_desktop import secrets

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    team = replace(settings, store_url=password_store.url)
    without = ConsoleApp(team, reviewer="t", tray=False)
    with pytest.raises(RuntimeError, match=f"role '{password_store.role}''s password and none"):
        await without.start()
    await without.stop()
    secrets.set_store_password(password_store.url, PASSWORD)
    with_password = ConsoleApp(team, reviewer="t", tray=False)
    await with_password.start()
    try:
        assert with_password.engine.actor == password_store.role
        assert with_password.engine.execute is True
    finally:
        await with_password.stop()


async def test_a_store_that_cannot_be_opened_at_start_is_named_and_quit_cleanly(
    settings: Settings, tmp_path: Path, memory_keyring
) -> None:
    port = _closed_port()
    team = replace(settings, store_url=f"postgresql://ana@127.0.0.1:{port}/hitl")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    task = asyncio.ensure_future(run_console(team, reviewer="t", tray=False, linger_s=0.0))
    box = await until(lambda: open_dialog(QMessageBox, "storeFailure"), what="the failure")
    assert f"postgresql://ana@127.0.0.1:{port}/hitl" in box.text()
    assert f"cannot reach 127.0.0.1:{port}: connection refused" in box.text()
    assert [b.text() for b in box.buttons()] == ["Settings…", "Quit"]
    _click(next(b for b in box.buttons() if b.text() == "Quit"))
    assert await asyncio.wait_for(task, 10) == 1


async def test_a_store_fixed_in_settings_at_start_starts_the_console_on_it(
    settings: Settings, team_store: TeamStore, memory_keyring
) -> None:
    port = _closed_port()
    broken = replace(settings, store_url=f"postgresql://ana@127.0.0.1:{port}/hitl")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    consoles: list[ConsoleApp] = []
    task = asyncio.ensure_future(
        run_console(broken, started=consoles.append, reviewer="t", tray=False, linger_s=0.0)
    )
    box = await until(lambda: open_dialog(QMessageBox, "storeFailure"), what="the failure")
    _click(next(b for b in box.buttons() if b.text() == "Settings…"))
    dialog = await until(lambda: open_dialog(SettingsDialog), what="the settings dialog")
    dialog.team_store.url_edit.setText(team_store.url)
    _click(dialog.save_button)
    await until(
        lambda: len(consoles) == 2 and consoles[1].engine.started,
        timeout=20,
        what="the console on the fixed store",
    )
    window = consoles[1].window
    assert window.isVisible() and team_store.role in window.windowTitle()
    assert consoles[0].window is not window and not consoles[0].window.isVisible()
    assert consoles[1].engine.actor == team_store.role
    consoles[1].quit.set()
    assert await asyncio.wait_for(task, 20) == 0


async def test_check_store_and_describe_failure_never_show_the_password(memory_keyring) -> None:
    port = _closed_port()
    url = f"postgresql://ana:hunter2-secret@127.0.0.1:{port}/hitl"
    with pytest.raises(Exception, match="connection refused") as caught:
        await check_store(url)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in describe_failure(url, ValueError(f"echo {url} hunter2-secret"))


async def test_test_connection_to_a_store_of_a_newer_version_says_so(
    qtbot, dialog_settings: Settings, team_store: TeamStore, memory_keyring
) -> None:
    admin = team_store.url.replace(f"{team_store.role}@", "postgres@")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    dialog = _dialog(qtbot, dialog_settings)
    dialog.team_store.url_edit.setText(team_store.url)
    status = await _tested(dialog)
    assert "its schema is at revision 9999, written by a newer hitl-desktop" in status
    assert "upgrade hitl-desktop" in status


async def test_a_server_that_never_answers_is_named_within_the_timeout() -> None:
    # Accepts the connection (the backlog does) but never speaks PostgreSQL.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(StoreProblem) as caught:
            await check_store(f"postgresql://ana@127.0.0.1:{port}/hitl", timeout=0.5)
    assert str(caught.value) == f"cannot reach 127.0.0.1:{port}: no answer within 0.5 s"


async def test_saved_settings_rename_the_reviewer_at_once_and_say_what_needs_a_restart(
    settings: Settings, memory_keyring
) -> None:
    async with running_console(settings) as app:
        # running_console names the reviewer itself; the app's own choice is what is tested.
        app._reviewer = None
        _click(app.window.settings_button)
        dialog = await until(lambda: open_dialog(SettingsDialog), what="the settings dialog")
        dialog.team_store.display_name_edit.setText("Ana Lima")
        dialog.team_store.review_only_check.setChecked(True)
        _click(dialog.save_button)
        await until(lambda: app.console.reviewer == "Ana Lima", what="the new reviewer name")
        message = app.window.statusBar().currentMessage()
        assert "restart hitl-desktop to use the review-only setting" in message
        assert app.engine.execute is True  # this run of the console goes on executing


async def test_a_missing_database_and_a_role_without_grants_are_named(
    team_store: TeamStore,
) -> None:
    missing = team_store.url.rsplit("/", 1)[0] + "/no_such_store"
    with pytest.raises(StoreProblem) as caught:
        await check_store(missing)
    where = team_store.url.split("@", 1)[1].split("/", 1)[0]
    assert str(caught.value) == f"there is no database 'no_such_store' on {where}"
    stranger = f"dee_{uuid.uuid4().hex[:8]}"
    pg.admin(f'CREATE ROLE "{stranger}" LOGIN')
    try:
        with pytest.raises(StoreProblem) as caught:
            await check_store(team_store.url.replace(f"{team_store.role}@", f"{stranger}@"))
        assert f"the role '{stranger}' may not use the store" in str(caught.value)
        assert "permission denied" in str(caught.value) and "docs/team.md" in str(caught.value)
    finally:
        pg.admin(f'DROP ROLE "{stranger}"')


def test_a_sqlite_store_that_cannot_be_opened_is_said_without_a_server() -> None:
    problem = describe_failure(
        "sqlite:///nowhere/runs.db", PermissionError(13, "Permission denied")
    )
    assert problem == "[Errno 13] Permission denied" and "cannot reach" not in problem
