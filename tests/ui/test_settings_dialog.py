"""The settings dialog: the key goes to the keyring only, shown masked; bad input saves nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from keyring.errors import KeyringError
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit

from hitl_desktop.config import Settings, check_settings, load_settings
from hitl_desktop.secrets import SERVICE, USERNAME, mask
from hitl_desktop.ui.settings_dialog import SettingsDialog
from tests.keyrings import MemoryKeyring

KEY = "sk-proj-DIALOGabcdefghijklmnopqrstuvwxyz0123456789k3y9"
STORED = "sk-proj-STOREDabcdefghijklmnopqrstuvwxyz0123456789zz42"


class RefusingKeyring(MemoryKeyring):
    """Present, but refuses to save (a locked collection)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError("the collection is locked")


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def memory(restore_keyring) -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        store_url=f"sqlite:///{tmp_path / 'data' / 'runs.db'}",
        config_dir=tmp_path / "config",
    )


def open_dialog(qtbot, settings: Settings, environ: dict[str, str] | None = None) -> SettingsDialog:
    dialog = SettingsDialog(settings, environ={} if environ is None else environ)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def save(qtbot, dialog: SettingsDialog) -> None:
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)


def on_screen(dialog: SettingsDialog) -> str:
    """Every text the dialog shows or holds: labels, fields, placeholders, tooltips, buttons."""
    texts = [dialog.windowTitle(), dialog.toolTip()]
    for label in dialog.findChildren(QLabel):
        texts += [label.text(), label.toolTip()]
    for edit in dialog.findChildren(QLineEdit):
        texts += [edit.text(), edit.placeholderText(), edit.toolTip(), edit.displayText()]
    for button in dialog.findChildren(QAbstractButton):
        texts += [button.text(), button.toolTip()]
    return "\n".join(texts)


def files_under(*roots: Path) -> dict[Path, bytes]:
    return {
        path: path.read_bytes()
        for root in roots
        if root.exists()
        for path in root.rglob("*")
        if path.is_file()
    }


def test_saving_stores_the_key_in_the_keyring_and_nowhere_else(
    qtbot, settings: Settings, memory: MemoryKeyring, tmp_path: Path
):
    dialog = open_dialog(qtbot, settings)
    dialog.key_edit.setText(KEY + "\n")  # a paste with a trailing newline
    dialog.proposer_combo.setCurrentIndex(dialog.proposer_combo.findData("openai"))
    dialog.model_edit.setText("gpt-4o-mini")
    dialog.target_edit.setText(str(tmp_path / "shop.db"))
    dialog.timeout_edit.setText("2d")
    dialog.notifications_check.setChecked(False)
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)

    assert memory.entries == {(SERVICE, USERNAME): KEY}
    assert dialog.key_edit.text() == ""
    saved = dialog.result_settings
    assert saved is not None
    assert saved.proposer == "openai" and saved.model == "gpt-4o-mini"
    assert saved.target_url == f"sqlite:///{tmp_path / 'shop.db'}"
    assert saved.token_timeout == "2d" and saved.notifications is False

    # The settings file has the rest, and the key appears in no file the app wrote.
    document = json.loads(saved.settings_file.read_text(encoding="utf-8"))
    assert document["model"] == "gpt-4o-mini"
    written = files_under(tmp_path)
    assert saved.settings_file in written
    assert not [path for path, data in written.items() if KEY.encode() in data]
    assert not [path for path, data in written.items() if b"DIALOGabcdef" in data]
    assert KEY not in repr(saved)
    assert (
        load_settings(
            {"HITL_CONFIG_DIR": str(tmp_path / "config"), "HITL_DATA_DIR": str(tmp_path / "data")}
        ).model
        == "gpt-4o-mini"
    )


def test_the_stored_key_is_shown_masked_with_its_backend(
    qtbot, settings: Settings, memory: MemoryKeyring
):
    memory.entries[(SERVICE, USERNAME)] = STORED
    dialog = open_dialog(qtbot, settings)
    text = on_screen(dialog)
    assert STORED not in text
    assert "STOREDabcdef" not in text
    assert mask(STORED) in dialog.key_status_label.text()
    assert "Saved in" in dialog.key_status_label.text()
    assert dialog.key_edit.text() == ""  # never loaded into the field
    assert dialog.key_edit.echoMode() == QLineEdit.EchoMode.Password
    assert dialog.remove_key_button.isEnabled()
    assert not dialog.keyring_warning.isVisible()


def test_a_typed_key_is_echoed_as_dots(qtbot, settings: Settings, memory: MemoryKeyring):
    dialog = open_dialog(qtbot, settings)
    dialog.key_edit.setText(KEY)
    assert KEY not in dialog.key_edit.displayText()


def test_an_environment_key_is_named_and_masked(qtbot, settings: Settings, memory: MemoryKeyring):
    memory.entries[(SERVICE, USERNAME)] = STORED
    dialog = open_dialog(qtbot, settings, {"OPENAI_API_KEY": KEY})
    status = dialog.key_status_label.text()
    assert "OPENAI_API_KEY" in status and mask(KEY) in status
    assert mask(STORED) in status  # the saved one is still shown, and removable
    assert KEY not in on_screen(dialog) and STORED not in on_screen(dialog)
    assert dialog.remove_key_button.isEnabled()


def test_remove_key_deletes_it_on_save_and_cancel_keeps_it(
    qtbot, settings: Settings, memory: MemoryKeyring
):
    memory.entries[(SERVICE, USERNAME)] = STORED
    dialog = open_dialog(qtbot, settings)
    qtbot.mouseClick(dialog.remove_key_button, Qt.MouseButton.LeftButton)
    assert "will be removed" in dialog.key_status_label.text()
    dialog.reject()
    assert memory.entries == {(SERVICE, USERNAME): STORED}

    dialog = open_dialog(qtbot, settings)
    qtbot.mouseClick(dialog.remove_key_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    assert memory.entries == {}


def test_without_a_keyring_the_dialog_says_so_and_saves_no_key(
    qtbot, settings: Settings, restore_keyring, tmp_path: Path
):
    keyring.set_keyring(fail.Keyring())
    dialog = open_dialog(qtbot, settings)
    assert dialog.keyring_warning.isVisible()
    warning = dialog.keyring_warning.text()
    assert "No keyring is available" in warning
    assert "OPENAI_API_KEY" in warning
    assert "gnome-keyring" in warning and "KWallet" in warning
    assert not dialog.key_edit.isEnabled()
    assert not dialog.remove_key_button.isEnabled()

    # The rest still saves; no key goes anywhere.
    dialog.model_edit.setText("gpt-4.1")
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    assert dialog.result_settings is not None
    assert dialog.result_settings.model == "gpt-4.1"
    assert list(files_under(tmp_path)) == [settings.settings_file]


def test_without_a_keyring_the_openai_proposer_points_at_the_environment(
    qtbot, settings: Settings, restore_keyring
):
    keyring.set_keyring(fail.Keyring())
    dialog = open_dialog(qtbot, settings)
    dialog.proposer_combo.setCurrentIndex(dialog.proposer_combo.findData("openai"))
    save(qtbot, dialog)
    assert "API key:" in dialog.error_text and "OPENAI_API_KEY" in dialog.error_text
    assert not settings.settings_file.exists()
    # With the key in the environment it is fine.
    dialog = open_dialog(qtbot, settings, {"OPENAI_API_KEY": KEY})
    dialog.proposer_combo.setCurrentIndex(dialog.proposer_combo.findData("openai"))
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)


def test_the_openai_proposer_on_a_local_server_needs_no_key(
    qtbot, settings: Settings, memory: MemoryKeyring
):
    dialog = open_dialog(qtbot, settings)
    dialog.proposer_combo.setCurrentIndex(dialog.proposer_combo.findData("openai"))
    dialog.base_url_edit.setText("http://127.0.0.1:11434/v1")
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    assert dialog.result_settings is not None
    assert dialog.result_settings.base_url == "http://127.0.0.1:11434/v1"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("target_edit", "not a url://x", "Target database:"),
        ("timeout_edit", "forever", "Token timeout:"),
        ("timeout_edit", "", "Token timeout:"),
        ("base_url_edit", "localhost:11434", "Base URL:"),
        ("model_edit", "  ", "Model:"),
        ("key_edit", "sk-two words", "API key:"),
    ],
)
def test_invalid_input_is_named_inline_and_nothing_is_saved(
    qtbot, settings: Settings, memory: MemoryKeyring, field: str, value: str, named: str
):
    dialog = open_dialog(qtbot, settings)
    if field != "key_edit":
        dialog.key_edit.setText(KEY)  # a valid key is not saved either while a field is wrong
    getattr(dialog, field).setText(value)
    with qtbot.assertNotEmitted(dialog.accepted):
        save(qtbot, dialog)
    assert dialog.isVisible()
    assert dialog.error_label.isVisible()
    assert dialog.error_text.startswith(named) or f"\n{named}" in dialog.error_text
    assert dialog.result_settings is None
    assert memory.entries == {}
    assert not settings.settings_file.exists()
    assert KEY not in dialog.error_text


def test_all_problems_are_listed_at_once_and_cleared_when_fixed(
    qtbot, settings: Settings, memory: MemoryKeyring
):
    dialog = open_dialog(qtbot, settings)
    dialog.target_edit.setText("not a url://x")
    dialog.timeout_edit.setText("soon")
    save(qtbot, dialog)
    assert "Target database:" in dialog.error_text and "Token timeout:" in dialog.error_text
    assert dialog.target_edit.styleSheet()  # marked
    dialog.target_edit.setText("postgresql://reviewer@db/shop")
    dialog.timeout_edit.setText("10m")
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    assert dialog.error_text == ""
    assert dialog.target_edit.styleSheet() == ""


def test_each_bad_field_is_marked_with_the_settings_own_reason_and_nothing_is_saved(
    qtbot, settings: Settings, memory: MemoryKeyring
):
    dialog = open_dialog(qtbot, settings)
    dialog.key_edit.setText(KEY)
    dialog.base_url_edit.setText("localhost:11434")
    dialog.model_edit.setText("  ")
    dialog.timeout_edit.setText("10m")
    with qtbot.assertNotEmitted(dialog.accepted):
        save(qtbot, dialog)
    # One line per bad field, in the form's order, each with the reason check_settings gives.
    model, base_url = check_settings({"model": "", "base_url": "localhost:11434"})
    assert dialog.error_text.replace("\n", " ") == (
        f"Model: {model.reason}. Base URL: {base_url.reason}."
    )
    assert dialog.model_edit.styleSheet() and dialog.base_url_edit.styleSheet()
    assert not dialog.timeout_edit.styleSheet() and not dialog.key_edit.styleSheet()
    assert dialog.focusWidget() is dialog.model_edit  # the first of them
    assert dialog.result_settings is None
    assert memory.entries == {}
    assert not settings.settings_file.exists()


def test_a_keyring_that_refuses_saves_nothing(qtbot, settings: Settings, restore_keyring):
    keyring.set_keyring(RefusingKeyring())
    dialog = open_dialog(qtbot, settings)
    dialog.key_edit.setText(KEY)
    dialog.model_edit.setText("gpt-4.1")
    with qtbot.assertNotEmitted(dialog.accepted):
        save(qtbot, dialog)
    assert "locked" in dialog.error_text
    assert KEY not in dialog.error_text
    assert not settings.settings_file.exists()


def test_a_target_set_by_hitl_target_is_locked_and_not_saved(
    qtbot, tmp_path: Path, memory: MemoryKeyring
):
    env = {
        "HITL_DATA_DIR": str(tmp_path / "data"),
        "HITL_CONFIG_DIR": str(tmp_path / "config"),
        "HITL_TARGET": "postgresql://from@env/shop",
    }
    settings = load_settings(env)
    dialog = open_dialog(qtbot, settings)
    assert not dialog.target_edit.isEnabled()
    assert dialog.target_edit.text() == "postgresql://from@env/shop"
    assert dialog.override_note.isVisible()
    assert "HITL_TARGET" in dialog.override_note.text()
    assert "Target database" in dialog.override_note.text()
    dialog.model_edit.setText("gpt-4.1")
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    assert dialog.result_settings is not None
    assert dialog.result_settings.target_url == "postgresql://from@env/shop"  # this launch's
    document = json.loads(settings.settings_file.read_text(encoding="utf-8"))
    assert document["target_url"] is None  # the file keeps its own
    assert document["model"] == "gpt-4.1"


def test_preferences_fixed_by_the_demo_are_locked(qtbot, settings: Settings, memory: MemoryKeyring):
    # `hitl-desktop --demo` fixes the target and the proposer for its launch.
    demo = dataclasses.replace(
        settings,
        target_url="sqlite:///demo/target.db",
        overridden=frozenset({"target_url", "proposer"}),
    )
    dialog = open_dialog(qtbot, demo)
    assert not dialog.proposer_combo.isEnabled() and not dialog.target_edit.isEnabled()
    assert "Proposer" in dialog.override_note.text()
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    assert dialog.result_settings is not None
    assert dialog.result_settings.target_url == "sqlite:///demo/target.db"
    document = json.loads(settings.settings_file.read_text(encoding="utf-8"))
    assert document["target_url"] is None and document["proposer"] == "offline"


def test_no_override_note_without_overrides(qtbot, settings: Settings, memory: MemoryKeyring):
    dialog = open_dialog(qtbot, settings)
    assert not dialog.override_note.isVisible()
    assert dialog.target_edit.isEnabled() and dialog.proposer_combo.isEnabled()


def test_the_dialog_shows_the_current_settings(qtbot, tmp_path: Path, memory: MemoryKeyring):
    settings = Settings(
        data_dir=tmp_path,
        store_url="sqlite://",
        config_dir=tmp_path,
        target_url="sqlite:///shop.db",
        proposer="openai",
        model="gpt-4.1",
        base_url="http://127.0.0.1:8000/v1",
        token_timeout="10m",
        notifications=False,
        close_to_tray=False,
    )
    dialog = open_dialog(qtbot, settings)
    assert dialog.proposer_combo.currentData() == "openai"
    assert dialog.model_edit.text() == "gpt-4.1"
    assert dialog.base_url_edit.text() == "http://127.0.0.1:8000/v1"
    assert dialog.target_edit.text() == "sqlite:///shop.db"
    assert dialog.timeout_edit.text() == "10m"
    assert not dialog.notifications_check.isChecked()
    assert not dialog.close_to_tray_check.isChecked()
    # Cancel changes nothing.
    dialog.model_edit.setText("other")
    dialog.reject()
    assert dialog.result_settings is None
    assert not settings.settings_file.exists()


def test_a_database_password_goes_to_the_keyring_never_into_the_file(
    qtbot, settings: Settings, memory: MemoryKeyring, tmp_path: Path
):
    dialog = open_dialog(qtbot, settings)
    # Typed into the URL, as people do: the password moves to the keyring.
    dialog.target_edit.setText("postgresql://app:hunter2@db.internal/shop")
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    saved = dialog.result_settings
    assert saved is not None and saved.target_url == "postgresql://app@db.internal/shop"
    assert memory.entries[(SERVICE, "db-password:default")] == "hunter2"
    assert not [path for path, data in files_under(tmp_path).items() if b"hunter2" in data]

    # Or in its own field, echoed as dots.
    dialog = open_dialog(qtbot, saved)
    assert dialog.db_password_edit.echoMode() == dialog.db_password_edit.EchoMode.Password
    dialog.db_password_edit.setText("correct horse")
    with qtbot.waitSignal(dialog.accepted):
        save(qtbot, dialog)
    assert memory.entries[(SERVICE, "db-password:default")] == "correct horse"
    assert dialog.db_password_edit.text() == ""
    assert not [path for path, data in files_under(tmp_path).items() if b"correct horse" in data]


def test_without_a_keyring_a_database_password_is_refused_and_nothing_saved(
    qtbot, settings: Settings, restore_keyring, tmp_path: Path
):
    keyring.set_keyring(fail.Keyring())
    dialog = open_dialog(qtbot, settings)
    assert not dialog.db_password_edit.isEnabled()
    assert "no keyring" in dialog.db_password_edit.placeholderText()
    dialog.target_edit.setText("postgresql://app:hunter2@db.internal/shop")
    save(qtbot, dialog)
    assert dialog.result_settings is None and "Database password" in dialog.error_text
    assert not settings.settings_file.exists()
    assert not [path for path, data in files_under(tmp_path).items() if b"hunter2" in data]
