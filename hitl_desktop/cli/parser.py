"""The argument tree of `hitl`: each command's arguments, and the object that runs it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from enum import StrEnum
from typing import Any, NoReturn

from .. import __version__
from ..agent import APPLY_MODES
from ..config import DEFAULT_MAX_ROWS, DEFAULT_MODEL, PROPOSERS
from ..engine import RunStatus, TokenStatus
from .audit import add_audit_commands
from .changes import Decide, DemoDb, Request
from .errors import USAGE, CliError
from .link import add_link_commands
from .migrate import Migrate
from .policy import add_policy_commands
from .profiles import ProfileAdd, ProfileList, ProfilePassword, ProfileRemove
from .revert import add_revert_command
from .store import Complete, Runs, Show, Tokens
from .worker import Worker


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The `hitl` parser; a parsed command line names its command's class as `command_type`."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--store",
        metavar="URL",
        help="the run store: a sqlite:/// or postgresql:// URL, or a SQLite file path "
        "(default: $HITL_STORE, else runs.db in the per-user data directory)",
    )
    common.add_argument("--json", action="store_true", help="print one JSON document")

    parser = _Parser(
        prog="hitl",
        description="Read and complete the runs and tokens of a hitl-desktop store.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = sub.add_parser("runs", parents=[common], help="list runs, newest first")
    runs.add_argument("--status", type=_status(RunStatus, "run"), help="only runs in this status")
    runs.add_argument("--task", help="only runs of this task")
    runs.add_argument("--limit", type=_positive, default=100, help="at most N runs (100)")
    runs.set_defaults(command_type=Runs)

    tokens = sub.add_parser("tokens", parents=[common], help="list tokens, newest first")
    tokens.add_argument(
        "--status", type=_status(TokenStatus, "token"), help="only tokens in this status"
    )
    tokens.add_argument(
        "--tag", action="append", metavar="TAG", help="only tokens with this tag (repeatable: all)"
    )
    tokens.add_argument("--run", dest="run_id", metavar="RUN_ID", help="only this run's tokens")
    tokens.add_argument("--limit", type=_positive, default=100, help="at most N tokens (100)")
    tokens.set_defaults(command_type=Tokens)

    show = sub.add_parser("show", parents=[common], help="a run, its steps and its tokens")
    show.add_argument("run_id", metavar="RUN_ID")
    show.set_defaults(command_type=Show)

    complete = sub.add_parser(
        "complete",
        parents=[common],
        help="complete a waiting token; its run resumes in the console",
        description="Complete a WAITING token with a JSON output. A token completes once: "
        "completing it again fails and changes nothing.",
    )
    complete.add_argument("token_id", metavar="TOKEN_ID")
    complete.add_argument(
        "--data",
        required=True,
        metavar="JSON",
        help="the token's output as JSON, '-' to read it from stdin, or @FILE",
    )
    complete.set_defaults(command_type=Complete)

    worker = sub.add_parser(
        "worker",
        parents=[common],
        help="execute runs and fire timers with no window, until SIGTERM or Ctrl-C",
        description="Execute db-change runs with this machine's target profiles and fire "
        "their timers, logging one line per run transition (--json: one JSON object per "
        "line). SIGTERM or Ctrl-C hands the runs in flight back to the queue and exits 0.",
    )
    worker.add_argument(
        "--check-overdue",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how often to look for reviews past their rule's remind_after (default 30)",
    )
    worker.set_defaults(command_type=Worker)

    migrate = sub.add_parser(
        "migrate",
        parents=[common],
        help="create or upgrade the store's schema (once, as the store's owner)",
    )
    migrate.set_defaults(command_type=Migrate)

    add_audit_commands(sub, common)
    add_policy_commands(sub, common)
    _add_profile_commands(sub)

    demo = sub.add_parser("demo-db", help="write the demo target database (a SQLite file)")
    demo.add_argument("path", metavar="PATH")
    demo.add_argument("--json", action="store_true", help="print one JSON document")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing file")
    demo.set_defaults(command_type=DemoDb)

    request = sub.add_parser(
        "request",
        parents=[common],
        help="ask for a database change: run db-change until it waits for review",
    )
    request.add_argument("text", metavar="TEXT", help="what should change, in plain words")
    request.add_argument(
        "--profile",
        metavar="NAME",
        help="the target profile: its database, proposer, model server and allow/deny lists "
        "(default: the settings' active profile; see 'hitl profile list')",
    )
    request.add_argument(
        "--timeout", metavar="DURATION", help="how long the review may wait (e.g. 10m, 24h)"
    )
    request.add_argument(
        "--apply",
        choices=APPLY_MODES,
        default="all",
        help="when the proposal is a change set of independent parts: 'all' writes them "
        "together once every part is approved (the default), 'each' writes each part as soon "
        "as it is approved",
    )
    request.add_argument(
        "--wait", type=_positive, default=300, metavar="S", help="give up after S seconds (300)"
    )
    request.set_defaults(command_type=Request)

    for name, helps in (
        ("approve", "approve a review: the change is written once"),
        ("reject", "reject a review: nothing is written"),
    ):
        decide = sub.add_parser(name, parents=[common], help=helps)
        decide.add_argument("token_id", metavar="TOKEN_ID")
        decide.add_argument(
            "--reviewer", help="your name, recorded with the decision (default: your login)"
        )
        if name == "approve":
            decide.add_argument("--comment", help="a note kept with the decision")
            decide.add_argument(
                "--edit",
                metavar="JSON",
                help='replacement values by change index, e.g. \'{"0": {"amount": "15.00"}}\' '
                "(validated again before writing)",
            )
        else:
            decide.add_argument("--reason", dest="comment", help="why, kept with the decision")
        decide.add_argument(
            "--wait", type=_positive, default=60, metavar="S", help="give up after S seconds (60)"
        )
        decide.set_defaults(command_type=Decide)

    add_link_commands(sub, common)
    add_revert_command(sub, common)
    return parser


def _add_profile_commands(sub: Any) -> None:
    """Add `profile` and its subcommands to *sub*, the subparsers of the `hitl` parser."""
    profile = sub.add_parser("profile", help="list, add or remove target profiles")
    inner = profile.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = inner.add_parser("list", help="the profiles of this machine")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    listing.set_defaults(command_type=ProfileList)

    add = inner.add_parser("add", help="add or replace a profile (checked against its database)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--target", required=True, metavar="URL", help="database URL or SQLite path")
    add.add_argument("--proposer", choices=PROPOSERS, default="offline")
    add.add_argument("--model", default=DEFAULT_MODEL)
    add.add_argument(
        "--base-url",
        metavar="URL",
        help="the OpenAI-compatible server (the key goes there and nowhere else)",
    )
    add.add_argument(
        "--allow",
        action="append",
        metavar="ENTRIES",
        help="tables or table.columns the agent may see (comma-separated; "
        "repeatable; default: every table)",
    )
    add.add_argument(
        "--deny",
        action="append",
        metavar="ENTRIES",
        help="tables or table.columns hidden from the agent (comma-separated)",
    )
    add.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, metavar="N")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the database password from standard input into the keyring",
    )
    add.add_argument(
        "--no-check", action="store_true", help="save without connecting to the database first"
    )
    add.add_argument("--json", action="store_true", help="print one JSON document")
    add.set_defaults(command_type=ProfileAdd)

    password = inner.add_parser("password", help="set a profile's database password (keyring)")
    password.add_argument("name", metavar="NAME")
    password.add_argument("--delete", action="store_true", help="forget the stored password")
    password.add_argument("--json", action="store_true", help="print one JSON document")
    password.set_defaults(command_type=ProfilePassword)

    remove = inner.add_parser("remove", help="remove a profile and its stored password")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--json", action="store_true", help="print one JSON document")
    remove.set_defaults(command_type=ProfileRemove)


def _status(enum: type[StrEnum], noun: str) -> Callable[[str], StrEnum]:
    def parse(text: str) -> StrEnum:
        try:
            return enum(text.upper())
        except ValueError:
            valid = ", ".join(enum)
            raise argparse.ArgumentTypeError(
                f"unknown {noun} status {text!r} (valid: {valid})"
            ) from None

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return value
