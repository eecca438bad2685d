"""The settings dialog: the OpenAI key (to the OS keyring), and the preferences (settings.json).

The key goes only through ``hitl_desktop.secrets``; ``settings.json`` gets everything else and
never the key. The stored key is never shown, only its masked form and where it is kept. Every
field is checked before anything is saved, the settings by ``config.check_settings`` (the same
check that loading and saving apply) and the key here; problems are listed under the form, each
naming its field, and nothing is written until all are fixed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .. import config, secrets
from ..agent import DEFAULT_PROFILE
from ..config import API_KEY_ENV, ConfigError, Settings, check_settings, save_settings
from ..units.defaults import DEFAULT_MODEL, ProposerName
from ..units.urls import as_store_url, parse_target_url, url_password, without_password
from .runs_model import is_dark
from .team_store import TeamStoreGroup

__all__ = ["SettingsDialog"]

_PROPOSERS = (
    ("offline", "Offline demo (no key, no network)"),
    ("openai", "OpenAI or a compatible server"),
)

# Messages are broken into lines here rather than word-wrapped by Qt: a word-wrapped label gets
# its height from a guess at its width, and in this dialog the guess squeezed the rows above it.
_FIELD_COLUMNS = 80  # under a field (the form's label column takes the rest of the width)
_NOTE_COLUMNS = 92  # across the dialog

# Field labels, also used to name the field in error messages.
KEY = "API key"
PROPOSER = "Proposer"
MODEL = "Model"
BASE_URL = "Base URL"
TARGET = "Target database"
DB_PASSWORD = "Database password"
TIMEOUT = "Token timeout"
FILE = "Settings file"


class SettingsDialog(QDialog):
    """Edit the settings; Save stores the key in the keyring and the rest in settings.json.

    After a successful save the dialog is accepted and :attr:`result_settings` holds the saved
    :class:`Settings`. *environ* (default: the process environment) is where
    ``OPENAI_API_KEY`` is looked up.
    """

    def __init__(
        self,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        self._environ = environ
        self._result: Settings | None = None
        self._remove_key = False
        self._invalid: list[QWidget] = []

        self._backend = secrets.backend_info()
        self._build()
        self._load()

    # ------------------------------------------------------------------ public

    @property
    def result_settings(self) -> Settings | None:
        """The settings as saved, or ``None`` until Save succeeded."""
        return self._result

    @property
    def error_text(self) -> str:
        """The problems shown under the form (empty when there are none)."""
        return self.error_label.text() if self.error_label.isVisible() else ""

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        openai_box = QGroupBox("Proposals")
        openai_column = QVBoxLayout(openai_box)
        openai_form = _form()

        self.proposer_combo = QComboBox()
        self.proposer_combo.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        for value, text in _PROPOSERS:
            self.proposer_combo.addItem(text, value)
        openai_form.addRow(f"{PROPOSER}:", self.proposer_combo)

        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setClearButtonEnabled(True)
        self.key_edit.setAccessibleName(KEY)
        self.remove_key_button = QPushButton("Remove key")
        self.remove_key_button.clicked.connect(self._toggle_remove)
        key_row = QHBoxLayout()
        key_row.setContentsMargins(0, 0, 0, 0)
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(self.remove_key_button)
        self.key_status_label = QLabel()
        self.key_status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._make_secondary(self.key_status_label)
        key_column = QVBoxLayout()
        key_column.setContentsMargins(0, 0, 0, 0)
        key_column.setSpacing(2)
        key_column.addLayout(key_row)
        key_column.addWidget(self.key_status_label)
        openai_form.addRow(f"{KEY}:", key_column)

        self.keyring_warning = QLabel()
        self.keyring_warning.setTextFormat(Qt.TextFormat.RichText)
        self.keyring_warning.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.keyring_warning.setFrameShape(QLabel.Shape.StyledPanel)
        self.keyring_warning.setContentsMargins(8, 6, 8, 6)
        self.keyring_warning.setVisible(False)
        # In the box's column, not a form row: a form row does not grow for wrapped rich text.
        openai_column.addWidget(self.keyring_warning)
        openai_column.addLayout(openai_form)

        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText(DEFAULT_MODEL)
        openai_form.addRow(f"{MODEL}:", self.model_edit)

        self.base_url_edit = QLineEdit()
        self.base_url_edit.setPlaceholderText("default: https://api.openai.com/v1")
        self.base_url_edit.setToolTip(
            "Any OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 for Ollama"
        )
        openai_form.addRow(f"{BASE_URL}:", self.base_url_edit)

        review_box = QGroupBox("Reviews")
        review_form = _form()
        review_box.setLayout(review_form)

        self.target_edit = QLineEdit()
        # Room for a typical URL; the dialog's width follows from its fields and messages
        # (no fixed minimum width on the dialog, which would stop the layout from growing it).
        self.target_edit.setMinimumWidth(420)
        self.target_edit.setPlaceholderText(
            "sqlite:///path/to/shop.db or postgresql://user@host/db"
        )
        review_form.addRow(f"{TARGET}:", self.target_edit)

        # The password never goes into the URL that is saved: it is kept in the keyring.
        self.db_password_edit = QLineEdit()
        self.db_password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.db_password_edit.setAccessibleName(DB_PASSWORD)
        review_form.addRow(f"{DB_PASSWORD}:", self.db_password_edit)

        self.timeout_edit = QLineEdit()
        self.timeout_edit.setFixedWidth(100)
        timeout_hint = QLabel("how long a run waits for a decision: 90s, 10m, 24h, 2d…")
        self._make_secondary(timeout_hint)
        timeout_row = QHBoxLayout()
        timeout_row.setContentsMargins(0, 0, 0, 0)
        timeout_row.addWidget(self.timeout_edit)
        timeout_row.addWidget(timeout_hint, 1)
        review_form.addRow(f"{TIMEOUT}:", timeout_row)

        self.notifications_check = QCheckBox("Notify me when a run waits for review")
        self.close_to_tray_check = QCheckBox("Keep running in the tray when the window is closed")
        review_form.addRow(self.notifications_check)
        review_form.addRow(self.close_to_tray_check)

        self.override_note = QLabel()
        self._make_secondary(self.override_note)
        self.override_note.setVisible(False)

        self.error_label = QLabel()
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setStyleSheet(f"color: {self._error_color()};")
        self.error_label.setVisible(False)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self._save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(openai_box)
        layout.addWidget(review_box)
        self.team_store = TeamStoreGroup(self._settings)
        layout.addWidget(self.team_store)
        layout.addWidget(self.override_note)
        layout.addWidget(self.error_label)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

        # The settings' fields (as check_settings names them) with their label and widget.
        self._fields: dict[str, tuple[str, QWidget]] = {
            "proposer": (PROPOSER, self.proposer_combo),
            "model": (MODEL, self.model_edit),
            "base_url": (BASE_URL, self.base_url_edit),
            "target_url": (TARGET, self.target_edit),
            "token_timeout": (TIMEOUT, self.timeout_edit),
            "notifications": ("Notifications", self.notifications_check),
            "close_to_tray": ("Close to tray", self.close_to_tray_check),
            **self.team_store.fields,
        }
        # Problems are listed in the order their fields appear, top to bottom.
        self._order: list[QWidget] = [
            self.proposer_combo,
            self.key_edit,
            self.model_edit,
            self.base_url_edit,
            self.target_edit,
            self.db_password_edit,
            self.timeout_edit,
            self.notifications_check,
            self.close_to_tray_check,
            *self.team_store.widgets,
            self.save_button,
        ]

    def _load(self) -> None:
        s = self._settings
        self.proposer_combo.setCurrentIndex(max(0, self.proposer_combo.findData(s.proposer)))
        self.model_edit.setText(s.model)
        self.base_url_edit.setText(s.base_url or "")
        self.target_edit.setText(s.target_url or "")
        self.timeout_edit.setText(s.token_timeout)
        self.notifications_check.setChecked(s.notifications)
        self.close_to_tray_check.setChecked(s.close_to_tray)
        self._show_key_state()

        # Preferences set for this launch (HITL_TARGET, --demo) are shown but not editable:
        # save_settings would keep the file's value for them anyway.
        fixed = [self._fields[name] for name in self._fields if name in s.overridden]
        for _, widget in fixed:
            widget.setEnabled(False)
        if fixed:
            names = ", ".join(label for label, _ in fixed)
            self.override_note.setText(
                _wrap(
                    "Set for this launch only (HITL_TARGET, HITL_STORE, --store or --demo), so "
                    f"not changed here: {names}.",
                    _NOTE_COLUMNS,
                )
            )
            self.override_note.setVisible(True)

    # ------------------------------------------------------------------ the key

    def _show_key_state(self) -> None:
        """Say where the key is, masked; disable what cannot work."""
        usable = self._backend.usable
        backend = self._backend.name
        from_env: str | None = None
        stored: str | None = None
        read_error: str | None = None
        try:
            if secrets.key_source(self._environ) == "environment":
                from_env = secrets.get_api_key(self._environ)
            stored = secrets.stored_api_key()
        except secrets.SecretsUnavailable as exc:
            read_error = str(exc)

        self.key_edit.setEnabled(usable)
        self.db_password_edit.setEnabled(usable)
        self.db_password_edit.setPlaceholderText(
            "kept in the OS keyring; empty: keep as it is"
            if usable
            else "cannot be saved here: no keyring (a password never goes into a file)"
        )
        self.remove_key_button.setEnabled(usable and stored is not None)
        self.remove_key_button.setText("Keep key" if self._remove_key else "Remove key")
        self.keyring_warning.setVisible(not usable)
        if not usable:
            self.keyring_warning.setText(self._no_keyring_html())

        lines: list[str] = []
        if from_env is not None:
            lines.append(
                f"Using {API_KEY_ENV} from the environment ({secrets.mask(from_env)}); it takes "
                "precedence over a key saved here."
            )
        if read_error is not None:
            lines.append(read_error)
        elif stored is not None and self._remove_key:
            lines.append(f"{secrets.mask(stored)} will be removed from {backend} when you save.")
        elif stored is not None:
            lines.append(f"Saved in {backend}: {secrets.mask(stored)}")
        elif from_env is None:
            lines.append(
                f"No key saved. A key you paste is kept in {backend}, never in a file."
                if usable
                else "No key saved."
            )
        self.key_status_label.setText(_wrap("\n".join(lines), _FIELD_COLUMNS))

        if not usable:
            placeholder = "cannot be saved here: no keyring"
        elif stored is not None and not self._remove_key:
            placeholder = f"paste a new key to replace {secrets.mask(stored)}"
        else:
            placeholder = "paste your API key (sk-…)"
        self.key_edit.setPlaceholderText(placeholder)

    def _no_keyring_html(self) -> str:
        # Explicit lines rather than word wrap: a wrapped label in a dialog gets its height
        # from a guess at its width, and the guess clipped the last line.
        return (
            "<b>No keyring is available, so the API key cannot be saved.</b><br>"
            f"Instead, set <code>{API_KEY_ENV}</code> in the environment the app starts from,<br>"
            f"e.g. <code>{API_KEY_ENV}=sk-… hitl-desktop</code>.<br>"
            "Or install a keyring and run it in your desktop session. On Linux: GNOME Keyring<br>"
            "(<code>apt install gnome-keyring libsecret-1-0</code>) or KWallet."
        )

    def _toggle_remove(self) -> None:
        self._remove_key = not self._remove_key
        if self._remove_key:
            self.key_edit.clear()
        self._show_key_state()

    # ------------------------------------------------------------------ save

    def _save(self) -> None:
        self._clear_errors()
        key_text = self.key_edit.text().strip()
        target_url, db_password = self._typed_target()
        db_password = self.db_password_edit.text() or db_password
        proposer: ProposerName = (
            "openai" if self.proposer_combo.currentData() == "openai" else "offline"
        )
        changes: dict[str, Any] = {
            "proposer": proposer,
            "model": self.model_edit.text().strip(),
            "base_url": self.base_url_edit.text().strip() or None,
            "target_url": target_url,
            "token_timeout": self.timeout_edit.text().strip(),
            "notifications": self.notifications_check.isChecked(),
            "close_to_tray": self.close_to_tray_check.isChecked(),
            **self.team_store.values(),
        }
        for name in self._settings.overridden:
            changes.pop(name, None)  # this launch's value stays; the file keeps its own

        errors = self._key_errors(key_text, proposer, changes.get("base_url"))
        for problem in check_settings(changes):
            label, widget = self._fields[problem.field]
            errors.append((widget, label, f"{problem.reason}."))
        if errors:
            self._show_errors(sorted(errors, key=lambda error: self._order.index(error[0])))
            return
        if changes.get("target_url") is not None:
            changes["target_url"] = parse_target_url(changes["target_url"])
        if not self.team_store.ready(self._save):  # a changed store is tested first
            return

        # The key first: if the keyring refuses it, nothing at all is saved.
        try:
            if key_text:
                secrets.set_api_key(key_text)
            elif self._remove_key:
                secrets.delete_api_key()
        except (secrets.SecretsUnavailable, secrets.InvalidApiKey) as exc:
            self._show_errors([(self.key_edit, KEY, str(exc))])
            return
        if db_password:
            try:
                secrets.set_db_password(DEFAULT_PROFILE, db_password)
            except (secrets.SecretsUnavailable, secrets.InvalidApiKey) as exc:
                self._show_errors([(self.db_password_edit, DB_PASSWORD, str(exc))])
                return
        if errors := self.team_store.save_password():
            self._show_errors(errors)
            return

        updated = config.with_preferences(self._settings, changes)
        try:
            save_settings(updated)
        except (OSError, ConfigError) as exc:
            self._show_errors(
                [(self.save_button, FILE, f"could not write {updated.settings_file}: {exc}")]
            )
            return
        self.key_edit.clear()
        self.db_password_edit.clear()
        self._remove_key = False
        self._result = updated
        self.accept()

    def _typed_target(self) -> tuple[str | None, str | None]:
        """The target as typed (None: empty) and a password typed into its URL, which goes to
        the keyring and never into the file; a disabled field keeps this launch's target."""
        if not self.target_edit.isEnabled():
            return self._settings.target_url, None
        text = self.target_edit.text().strip()
        if not text:
            return None, None
        typed = as_store_url(text)
        password = url_password(typed)
        return (typed, None) if password is None else (without_password(typed), password)

    def _key_errors(
        self, key_text: str, proposer: ProposerName, base_url: str | None
    ) -> list[tuple[QWidget, str, str]]:
        """The API key's problems: it is a secret for the keyring, not a setting."""
        if key_text:
            try:
                secrets.validate_api_key(key_text)
            except secrets.InvalidApiKey as exc:
                return [(self.key_edit, KEY, str(exc))]
        if proposer == "openai" and base_url is None and not key_text and not self._has_key():
            return [
                (
                    self.key_edit if self.key_edit.isEnabled() else self.proposer_combo,
                    KEY,
                    f"the OpenAI proposer needs a key: paste one here, set {API_KEY_ENV}, or "
                    "choose the offline demo.",
                )
            ]
        return []

    def _has_key(self) -> bool:
        """Whether a key is available once this dialog saves (env, or kept in the keyring)."""
        try:
            source = secrets.key_source(self._environ)
        except secrets.SecretsUnavailable:
            return False
        return source == "environment" or (source == "keyring" and not self._remove_key)

    # ------------------------------------------------------------------ errors

    def _show_errors(self, errors: list[tuple[QWidget, str, str]]) -> None:
        self.error_label.setText(
            _wrap("\n".join(f"{field}: {message}" for _, field, message in errors), _NOTE_COLUMNS)
        )
        self.error_label.setVisible(True)
        for widget, _, _ in errors:
            if isinstance(widget, QLineEdit):
                widget.setStyleSheet(f"QLineEdit {{ border: 1px solid {self._error_color()}; }}")
                self._invalid.append(widget)
        errors[0][0].setFocus()

    def _clear_errors(self) -> None:
        self.error_label.clear()
        self.error_label.setVisible(False)
        for widget in self._invalid:
            widget.setStyleSheet("")
        self._invalid.clear()

    def _error_color(self) -> str:
        return "#ff8a80" if is_dark(self.palette()) else "#c62828"

    def _make_secondary(self, label: QLabel) -> None:
        """Hints in the palette's placeholder colour: quieter than the fields, in dark and light."""
        palette = label.palette()
        palette.setColor(
            QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText)
        )
        label.setPalette(palette)


def _wrap(text: str, columns: int) -> str:
    """*text* broken into lines of at most *columns* characters, keeping its own line breaks."""
    return "\n".join(
        textwrap.fill(line, columns, break_long_words=False, break_on_hyphens=False) or line
        for line in text.splitlines()
    )


def _form() -> QFormLayout:
    form = QFormLayout()
    # Every field takes the full width (labels too, so wrapped hints wrap at the form's width).
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form
