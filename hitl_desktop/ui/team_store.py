"""The settings dialog's "Team store" group: a shared PostgreSQL store (its password to the OS
keyring, never the file), review only, the reviewer's display name, and Test connection.

A store is tested the way the console opens it (``Engine(url, migrate=False)``, opened then
stopped), on the running loop and bounded by `TEST_TIMEOUT_S`, so the dialog stays responsive.
Save tests a changed store first and saves nothing when it fails. Whatever goes wrong is said in
words that name the problem (`describe_failure`): the console says the same when it cannot open
its store at start.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Callable, Iterator

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QHideEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .. import secrets
from ..config import MAX_DISPLAY_NAME, Settings, check_settings
from ..engine import Engine, StoreNotUsable
from ..units.urls import display_url, redact_url, sqlite_database, url_password, without_password
from .runs_model import is_dark

__all__ = [
    "DISPLAY_NAME",
    "STORE",
    "STORE_PASSWORD",
    "TEST_TIMEOUT_S",
    "StoreProblem",
    "TeamStoreGroup",
    "check_store",
    "describe_failure",
    "os_account",
]

TEST_TIMEOUT_S = 10.0
"""How long a connection test (or the console's start on a team store) may take."""

# Field labels, also used to name the field in error messages.
STORE = "Team store"
STORE_PASSWORD = "Store password"
REVIEW_ONLY = "Review only"
DISPLAY_NAME = "Display name"

_PG_PORT = 5432


class StoreProblem(RuntimeError):
    """A store that cannot be opened; the message names the problem and never the password."""


def os_account() -> str:
    """The OS account: who decides on a SQLite store, and the display name's default."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still a name for the decision
        return "reviewer"


async def check_store(url: str, *, timeout: float = TEST_TIMEOUT_S) -> str:
    """Open the store at *url* (password included) as a team console does, then close it;
    return who the store says this session is (the database role). Raises `StoreProblem`."""
    engine = Engine(url, tasks=[], migrate=False, execute=False)
    try:
        await asyncio.wait_for(engine.open(), timeout)
        return engine.actor
    except TimeoutError:
        raise StoreProblem(f"cannot reach {_where(url)}: no answer within {timeout:g} s") from None
    except Exception as exc:
        raise StoreProblem(describe_failure(url, exc)) from None
    finally:
        await engine.stop()


def describe_failure(url: str, exc: BaseException) -> str:
    """What went wrong opening the store at *url*, in words that name the problem."""
    said = _scrub(str(exc), url) or type(exc).__name__
    if isinstance(exc, StoreNotUsable | StoreProblem) or _is_file(url):
        return said  # a file has no server, role or host to name
    where = _where(url)
    role = _role(url)
    for cause in _causes(exc):
        state = getattr(cause, "sqlstate", None)
        text = _scrub(str(cause), url)
        if state == "28P01" and url_password(url) is None:
            return (
                f"the server at {where} wants the role {role}'s password and none is saved "
                f"for this store: type it in {STORE_PASSWORD} (Settings)"
            )
        if state == "28P01":
            return (
                f"the server at {where} refused the role {role}: wrong password ({text}); "
                f"type the role's password in {STORE_PASSWORD}"
            )
        if isinstance(state, str) and state.startswith("28"):
            return f"the server at {where} refused the role {role}: {text}"
        if state == "3D000":
            return f"there is no database {make_url(url).database!r} on {where}"
        if state == "42501":
            return (
                f"the role {role} may not use the store {redact_url(url)} ({text}); ask the "
                "store's owner to grant it the team role (docs/team.md)"
            )
        if isinstance(cause, socket.gaierror):
            return f"cannot reach {where}: no such host"
        if isinstance(cause, ConnectionRefusedError):
            return f"cannot reach {where}: connection refused"
        if isinstance(cause, TimeoutError):
            return f"cannot reach {where}: no answer"
        if isinstance(cause, OSError):
            return f"cannot reach {where}: {cause.strerror or text}"
    return said


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """*exc* and what caused it, outermost first: a driver's error is wrapped by SQLAlchemy's."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_file(url: str) -> bool:
    try:
        return sqlite_database(url) is not None
    except ArgumentError:
        return False


def _where(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return redact_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or _PG_PORT}"


def _role(url: str) -> str:
    try:
        name = make_url(url).username
    except ArgumentError:
        name = None
    return repr(name) if name else "(your OS account's name)"


def _scrub(text: str, url: str) -> str:
    """*text* without the password of *url*, should a driver's message echo it."""
    password = url_password(url)
    return text.replace(password, "***") if password else text


class TeamStoreGroup(QGroupBox):
    """The team store's fields in the settings dialog; the dialog reads `values()` with its own
    fields, checks them with `config.check_settings`, asks `ready()` before saving anything and
    `save_password()` with its other secrets."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(STORE, parent)
        self._settings = settings
        self._saved_url = settings.team_store_url or ""
        self._tested: tuple[str, str | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._build()
        self._load()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        column = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        column.addLayout(form)

        self.url_edit = QLineEdit()
        self.url_edit.setAccessibleName(STORE)
        self.url_edit.setPlaceholderText(
            "empty: this machine's own store; shared: postgresql://you@db.example:5432/hitl"
        )
        form.addRow(f"{STORE}:", self.url_edit)

        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setAccessibleName(STORE_PASSWORD)
        form.addRow(f"{STORE_PASSWORD}:", self.password_edit)

        self.review_only_check = QCheckBox(
            "Review only (this console executes nothing; workers do)"
        )
        form.addRow(self.review_only_check)

        self.display_name_edit = QLineEdit()
        self.display_name_edit.setMaxLength(MAX_DISPLAY_NAME)
        self.display_name_edit.setPlaceholderText(
            f"shown beside your database role or account; empty: {os_account()}"
        )
        form.addRow(f"{DISPLAY_NAME}:", self.display_name_edit)

        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self._on_test)
        self.status_label = QLabel()
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.test_button)
        row.addWidget(self.status_label, 1)
        column.addLayout(row)

        self.fields: dict[str, tuple[str, QWidget]] = {
            "store_url": (STORE, self.url_edit),
            "review_only": (REVIEW_ONLY, self.review_only_check),
            "display_name": (DISPLAY_NAME, self.display_name_edit),
        }
        """The settings' fields (as check_settings names them) with their label and widget."""
        self.widgets: list[QWidget] = [
            self.url_edit,
            self.password_edit,
            self.review_only_check,
            self.display_name_edit,
        ]
        """Top to bottom, for the order the dialog lists problems in."""

    def _load(self) -> None:
        s = self._settings
        self.url_edit.setText(self._saved_url)
        self.review_only_check.setChecked(s.review_only)
        self.display_name_edit.setText(s.display_name)
        usable = secrets.backend_info().usable
        self.password_edit.setEnabled(usable)
        self.password_edit.setPlaceholderText(
            "the role's password, kept in the OS keyring; empty: keep as it is"
            if usable
            else "cannot be saved here: no keyring (a password never goes into a file)"
        )
        if "store_url" in s.overridden:  # HITL_STORE or --store: this launch's, not the file's
            self.url_edit.setEnabled(False)
            self.password_edit.setEnabled(False)
            self.test_button.setEnabled(False)
            self._say(f"This launch uses {display_url(s.store_url)} (HITL_STORE or --store).")

    # ------------------------------------------------------------------ public

    @property
    def status_text(self) -> str:
        """What the group says about the store (a test's outcome, or why it cannot be changed)."""
        return self.status_label.text()

    @property
    def testing(self) -> bool:
        return self._task is not None and not self._task.done()

    def values(self) -> dict[str, object]:
        """The group's preferences, as settings.json spells them (a password typed into the URL
        left out: it goes to the keyring)."""
        url, _ = self._typed()
        return {
            "store_url": url,
            "review_only": self.review_only_check.isChecked(),
            "display_name": self.display_name_edit.text().strip(),
        }

    def ready(self, save: Callable[[], None]) -> bool:
        """Whether Save may go on: the store is unchanged, this machine's own, or passed a test
        as typed. Otherwise a test starts, and *save* is called again once it passes; a failed
        test is shown here and nothing is saved."""
        typed = self._typed()
        url, password = typed
        if not self.url_edit.isEnabled() or not url:
            return True
        if (url == self._saved_url and password is None) or typed == self._tested:
            return True
        if not self.testing:
            self._start_test(save)
        return False

    def save_password(self) -> list[tuple[QWidget, str, str]]:
        """Keep a typed password in the keyring, for the typed store; the problems, if any, as
        the dialog lists them (widget, field, message)."""
        url, password = self._typed()
        if not url or password is None:
            return []
        try:
            secrets.set_store_password(url, password)
        except (secrets.SecretsUnavailable, secrets.InvalidApiKey) as exc:
            return [(self.password_edit, STORE_PASSWORD, str(exc))]
        self.password_edit.clear()
        if self.url_edit.text().strip() != url:
            self.url_edit.setText(url)  # the password typed into it is in the keyring now
        return []

    async def test(self) -> bool:
        """Test the store as typed; say how it went (who it connects as, or what is wrong)."""
        typed = self._typed()
        url, password = typed
        if not url:
            self._say("This machine's own store: nothing to test.")
            return True
        problems = check_settings({"store_url": url})
        if problems:
            self._say(f"{STORE}: {problems[0].reason}.", error=True)
            return False
        self.test_button.setEnabled(False)
        self._say(f"Connecting to {_where(url)}…")
        try:
            connect = _with_password(url, password)
            actor = await check_store(connect)
        except (StoreProblem, secrets.SecretsUnavailable) as exc:
            self._say(str(exc), error=True)
            return False
        finally:
            if shiboken6.isValid(self.test_button):
                self.test_button.setEnabled(True)
        self._tested = typed
        self._say(f"Connected to {display_url(url)} as {actor}: the store is ready.")
        return True

    # ------------------------------------------------------------------ private

    def _typed(self) -> tuple[str, str | None]:
        """The store URL as typed, without a password ("" for none), and the password typed in
        the password field or, failing that, into the URL (None: none typed)."""
        text = self.url_edit.text().strip()
        typed_password = self.password_edit.text() or None
        if not text:
            return "", None
        in_url = url_password(text)
        url = without_password(text) if in_url is not None else text
        return url, typed_password or in_url

    def _on_test(self) -> None:
        if not self.testing:
            self._start_test(None)

    def _start_test(self, then: Callable[[], None] | None) -> None:
        self._task = asyncio.ensure_future(self._test_then(then))

    async def _test_then(self, then: Callable[[], None] | None) -> None:
        if await self.test() and then is not None and shiboken6.isValid(self):
            then()

    def _say(self, text: str, *, error: bool = False) -> None:
        color = ("#ff8a80" if is_dark(self.palette()) else "#c62828") if error else ""
        self.status_label.setStyleSheet(f"color: {color};" if color else "")
        self.status_label.setText(text)

    def hideEvent(self, event: QHideEvent) -> None:
        # The dialog closed: a test still running would report to nothing.
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().hideEvent(event)


def _with_password(url: str, typed: str | None) -> str:
    """*url* with *typed* put in, else the keyring's password for it (in memory only)."""
    if typed is None:
        return secrets.with_store_password(url)
    return make_url(url).set(password=typed).render_as_string(hide_password=False)
