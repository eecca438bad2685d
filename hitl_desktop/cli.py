"""`hitl`: read and complete runs and tokens in a store without the console.

    hitl runs [--status S] [--task T] [--limit N]
    hitl tokens [--status S] [--tag T]... [--run RUN_ID] [--limit N]
    hitl show RUN_ID
    hitl complete TOKEN_ID --data '{"decision": "approve", "reviewer": "ana"}'
    hitl demo-db PATH
    hitl profile add NAME --target URL [--proposer offline|openai] [--password-stdin] ...
    hitl profile list | remove NAME | password NAME
    hitl request "Refund $20 on invoice 1042" [--profile NAME]
    hitl approve TOKEN_ID [--comment C] [--edit JSON]
    hitl reject TOKEN_ID [--reason R]

Every command takes `--store URL` (default: HITL_STORE, else runs.db in the per-user data
directory) and `--json` (one JSON document on stdout). `complete` only opens the store: the
run whose token it completes is left QUEUED for the console's engine, which picks it up at once
when it is running, or when it next starts. `request`, `approve` and `reject` work on the
built-in `db-change` task: `request` executes the run until it waits for review; `approve` and
`reject` decide it and then drive the run to its end themselves, unless another process (a
console) is executing runs on the store, which then does it while the CLI waits for the outcome.
A request names a target profile (`hitl profile`, or the console's settings): the database, the
model server and the allow and deny lists come from this machine's profile, never from a run.

Errors are one line on stderr starting with `hitl: error: `. Exit status:

    0  done (a db-change run: applied, or rejected)
    1  an error: unknown id, a token already decided, an unusable store or settings
    2  usage: bad arguments, bad JSON, a decision or request that is not well-formed
    3  conflict: the rows the proposal read or writes changed since; nothing was written
    4  invalid edit: the edits were refused (the run still waits) or no longer apply
    5  expired: the review's deadline passed; nothing was written
    6  failed: the run failed (its error is printed)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import __version__, secrets
from .agent import create_demo_db
from .agent.db_change import (
    ChangeRequest,
    EditRefused,
    RequestInvalid,
    db_change_task,
    decide,
    request_change,
)
from .agent.review import (
    TASK_NAME,
    Decision,
    DecisionInvalid,
    Outcome,
    Review,
    parse_edits,
    review_from_steps,
)
from .agent.targets import Targets
from .cli_profile import add_profile_commands
from .config import ConfigError, as_store_url, load_settings, sqlite_url
from .engine import (
    Engine,
    EngineError,
    OutputRefused,
    Run,
    RunStatus,
    Step,
    Token,
    TokenAlreadyFinished,
    TokenExpired,
    TokenStatus,
    redact_url,
)

FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)

FAILURE = 1
USAGE = 2
CONFLICT = 3
INVALID_EDIT = 4
EXPIRED = 5
RUN_FAILED = 6

OUTCOME_CODES = {"applied": 0, "rejected": 0, "conflict": CONFLICT}
OUTCOME_CODES.update(invalid_edit=INVALID_EDIT, expired=EXPIRED)
"""The exit status for each outcome of a db-change run."""


class CliError(Exception):
    """Ends the command with one line on stderr and exit status *code*."""

    def __init__(self, message: str, code: int = FAILURE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Output:
    """What a command prints: *doc* with --json, *text* otherwise; then it exits with *code*."""

    doc: dict[str, Any]
    text: str
    code: int = 0


Fetch = Callable[[Engine, argparse.Namespace], Awaitable[Any]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `hitl` command line; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        _check_unicode(vars(args))
        if args.command == "demo-db":
            fetched = _demo_db(args)
        elif args.command == "profile":
            fetched = args.run(args)
        else:
            url = _store_url(args.store, create=args.command == "request")
            if args.command == "complete":
                args.output = _parse_data(args.data)
            if args.command in ("approve", "reject"):
                args.decision = _decision(args)
            if args.command == "request":
                args.change = _change_request(args)
            fetched = asyncio.run(_with_engine(url, args.fetch, args))
    except CliError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"hitl: error: {message}", file=sys.stderr)
        return exc.code
    except SystemExit as exc:  # --help and --version print and exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("hitl: error: interrupted", file=sys.stderr)
        return 130
    out: Output = args.render(fetched, args)
    if args.json:
        text = json.dumps(out.doc, indent=2, ensure_ascii=False, default=_json_default)
    else:
        text = out.text
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader went away (`hitl runs | head`): stop quietly, and keep Python's exit-time
        # flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILURE
    return out.code


# ---------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", USAGE)


def _parser() -> argparse.ArgumentParser:
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
    runs.set_defaults(fetch=_fetch_runs, render=_render_runs)

    tokens = sub.add_parser("tokens", parents=[common], help="list tokens, newest first")
    tokens.add_argument(
        "--status", type=_status(TokenStatus, "token"), help="only tokens in this status"
    )
    tokens.add_argument(
        "--tag", action="append", metavar="TAG", help="only tokens with this tag (repeatable: all)"
    )
    tokens.add_argument("--run", dest="run_id", metavar="RUN_ID", help="only this run's tokens")
    tokens.add_argument("--limit", type=_positive, default=100, help="at most N tokens (100)")
    tokens.set_defaults(fetch=_fetch_tokens, render=_render_tokens)

    show = sub.add_parser("show", parents=[common], help="a run, its steps and its tokens")
    show.add_argument("run_id", metavar="RUN_ID")
    show.set_defaults(fetch=_fetch_show, render=_render_show)

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
    complete.set_defaults(fetch=_fetch_complete, render=_render_complete)

    add_profile_commands(sub)

    demo = sub.add_parser("demo-db", help="write the demo target database (a SQLite file)")
    demo.add_argument("path", metavar="PATH")
    demo.add_argument("--json", action="store_true", help="print one JSON document")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing file")
    demo.set_defaults(render=_render_demo_db)

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
        "--wait", type=_positive, default=300, metavar="S", help="give up after S seconds (300)"
    )
    request.set_defaults(fetch=_fetch_request, render=_render_request)

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
        decide.set_defaults(fetch=_fetch_decide, render=_render_decide)
    return parser


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return value


def _store_url(given: str | None, *, create: bool = False) -> str:
    """The store to open; a SQLite file must exist already unless *create* (reads never create
    a store)."""
    if given is not None and not given.strip():
        raise CliError("--store is empty", USAGE)
    try:
        url = load_settings().store_url if given is None else as_store_url(given)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot prepare the data directory: {exc}") from None
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CliError(f"--store {given!r} is not a database URL: {exc}", USAGE) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database not in ("", ":memory:") and not Path(database).is_file() and not create:
            raise CliError(
                f"no store at {database}: nothing has run there yet "
                "(pass --store URL or set HITL_STORE)"
            )
    return url


def _parse_data(data: str, option: str = "--data") -> Any:
    if data == "-":
        text, source = sys.stdin.read(), "stdin"
    elif data.startswith("@"):
        try:
            text, source = Path(data[1:]).read_text(encoding="utf-8"), data[1:]
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --data file: {exc}", USAGE) from None
    else:
        text, source = data, option
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}", USAGE) from None
    _check_unicode(value, source)
    return value


def _check_unicode(value: Any, where: str | None = None) -> None:
    """Refuse text that cannot be stored (a lone surrogate from a JSON escape such as
    ``"\\ud800"``, or bytes of the command line that are not UTF-8), naming where it is."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise CliError(
                f"{where or 'an argument'} holds text that is not valid Unicode ({bad})", USAGE
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            name = where or f"--{str(key).replace('_', '-')}"
            _check_unicode(key, name)
            _check_unicode(item, name)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_unicode(item, where)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


# ---------------------------------------------------------------- commands
# Each command is a fetch (engine calls, inside the store's error handling) and a render
# (pure formatting, outside it: a bug there should show its traceback, not blame the store).


async def _with_engine(url: str, fetch: Fetch, args: argparse.Namespace) -> Any:
    args.targets = _targets(args)
    engine = Engine(url, tasks=[db_change_task(args.targets)])
    try:
        await engine.open()
        return await fetch(engine, args)
    except CliError:
        raise
    except EngineError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # the store is unreachable, not a store, locked, ...
        raise CliError(f"cannot use the store {redact_url(url)}: {_describe(exc)}") from None
    finally:
        await engine.stop()
        args.targets.close()


def _targets(args: argparse.Namespace) -> Targets:
    """This machine's target profiles, for the commands that execute db-change runs."""
    if args.command not in ("request", "approve", "reject"):
        return Targets()
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return Targets(
        settings.target_profiles(),
        api_key=secrets.get_api_key,
        db_password=secrets.get_db_password,
    )


async def _fetch_runs(engine: Engine, args: argparse.Namespace) -> list[Run]:
    return await engine.list_runs(status=args.status, task=args.task, limit=args.limit)


def _render_runs(runs: list[Run], args: argparse.Namespace) -> Output:
    rows = [
        [r.id, r.task, r.status, _when(r.created_at), _tags(r.tags), r.waiting_token_id or "-"]
        for r in runs
    ]
    headers = ["RUN", "TASK", "STATUS", "CREATED", "TAGS", "WAITING ON"]
    text = _table(headers, rows, empty="no runs") + _footer(len(runs), args.limit, "run")
    return Output({"runs": [_record(r) for r in runs]}, text)


async def _fetch_tokens(engine: Engine, args: argparse.Namespace) -> list[Token]:
    if args.run_id is not None:
        await engine.get_run(args.run_id)  # an unknown run is an error, not an empty list
    return await engine.list_tokens(
        status=args.status, tags=args.tag or [], run_id=args.run_id, limit=args.limit
    )


def _render_tokens(tokens: list[Token], args: argparse.Namespace) -> Output:
    text = _token_table(tokens) + _footer(len(tokens), args.limit, "token")
    return Output({"tokens": [_record(t) for t in tokens]}, text)


async def _fetch_show(
    engine: Engine, args: argparse.Namespace
) -> tuple[Run, list[Step], list[Token]]:
    run = await engine.get_run(args.run_id)
    steps = await engine.get_steps(run.id)
    tokens = await engine.list_tokens(run_id=run.id, limit=1000)
    return run, steps, tokens


def _render_show(fetched: tuple[Run, list[Step], list[Token]], args: argparse.Namespace) -> Output:
    run, steps, tokens = fetched
    doc = {
        "run": _record(run),
        "steps": [{**_record(s), "duration_s": s.duration_s} for s in steps],
        "tokens": [_record(t) for t in tokens],
    }
    return Output(doc, _show_text(run, steps, tokens))


async def _fetch_complete(engine: Engine, args: argparse.Namespace) -> tuple[Token, Run | None]:
    token = await engine.get_token(args.token_id)
    owner = None if token.run_id is None else await engine.get_run(token.run_id)
    if owner is not None and owner.task == TASK_NAME:
        # A db-change run resumes with a decision: a malformed one is refused before the token
        # is used up, not left to fail the run.
        try:
            Decision.from_json(args.output)
        except DecisionInvalid as exc:
            raise CliError(
                f"--data is not a db-change decision: {exc} (for example "
                '\'{"decision": "approve", "reviewer": "ana"}\', or use hitl approve/reject)',
                USAGE,
            ) from None
    try:
        token = await engine.complete_token(args.token_id, args.output)
    except OutputRefused as exc:
        raise CliError(str(exc), USAGE) from None
    except TokenExpired as exc:
        raise CliError(str(exc), EXPIRED) from None
    # Read back: a running console may already have claimed (or even finished) the run.
    run = None if token.run_id is None else await engine.get_run(token.run_id)
    return token, run


def _render_complete(fetched: tuple[Token, Run | None], args: argparse.Namespace) -> Output:
    token, run = fetched
    lines = [f"completed token {token.id}"]
    if run is None:
        lines.append("it belongs to no run")
    elif run.status == RunStatus.QUEUED:
        lines.append(
            f"run {run.id} is QUEUED: a running console resumes it within a moment, "
            "otherwise the next one to start does"
        )
    else:
        lines.append(f"run {run.id} is {run.status}")
    doc = {"token": _record(token), "run": None if run is None else _record(run)}
    return Output(doc, "\n".join(lines))


# ---------------------------------------------------------------- db-change: request, decide


def _demo_db(args: argparse.Namespace) -> Path:
    path = Path(args.path).expanduser().absolute()
    if not path.parent.is_dir():
        raise CliError(f"no directory {path.parent}")
    try:
        create_demo_db(path, overwrite=args.overwrite)
    except FileExistsError:
        raise CliError(f"{path} exists (pass --overwrite to replace it)") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}") from None
    return path


def _render_demo_db(path: Path, args: argparse.Namespace) -> Output:
    url = sqlite_url(path)
    return Output(
        {"path": str(path), "url": url},
        f"wrote the demo database {path}\nuse it with: hitl request TEXT --target {url}",
    )


def _change_request(args: argparse.Namespace) -> ChangeRequest:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    name = args.profile or settings.profile
    if name not in settings.target_profiles():
        known = ", ".join(sorted(settings.target_profiles())) or "none"
        raise CliError(
            f"no target profile {name!r} (profiles here: {known}): add one with 'hitl profile "
            "add NAME --target URL', set HITL_TARGET, or choose a target in the console's "
            "settings",
            USAGE,
        )
    try:
        return settings.change_request(args.text, profile=name, timeout=args.timeout)
    except RequestInvalid as exc:
        raise CliError(str(exc), USAGE) from None


def _decision(args: argparse.Namespace) -> Decision:
    reviewer = args.reviewer or getpass.getuser()
    edits: Any = ()
    try:
        if getattr(args, "edit", None):
            edits = parse_edits(_parse_data(args.edit, "--edit"))
        return Decision.from_json(
            {
                "decision": args.command,
                "reviewer": reviewer,
                "comment": args.comment,
                "edits": [{"index": e.index, "values": e.values} for e in edits],
            }
        )
    except DecisionInvalid as exc:
        raise CliError(
            f"--edit: {exc}" if edits or args.command == "approve" else str(exc), USAGE
        ) from None


async def _fetch_request(engine: Engine, args: argparse.Namespace) -> tuple[Run, Review | None]:
    await engine.start()
    run = await request_change(engine, args.change)
    try:
        run = await engine.wait_for(run.id, timeout=args.wait)
    except TimeoutError:
        raise CliError(
            f"run {run.id} was not ready for review within {args.wait} s; "
            "the console's engine carries on with it"
        ) from None
    if run.status == RunStatus.FAILED:
        raise CliError(f"run {run.id} failed: {run.error}", RUN_FAILED)
    review = review_from_steps(await engine.get_steps(run.id))
    return run, review


def _render_request(fetched: tuple[Run, Review | None], args: argparse.Namespace) -> Output:
    run, review = fetched
    token = run.waiting_token_id
    lines = [f"run {run.id} is {run.status}"]
    if review is not None:
        lines += [
            f"token {token}",
            f"summary: {review.summary}",
            f"proposed by {review.proposer} for {review.target}",
            *(_diff_line(diff) for diff in review.diffs),
            f"approve: hitl approve {token}    reject: hitl reject {token}",
        ]
    doc = {
        "run": _record(run),
        "token_id": token,
        "review": None if review is None else review.to_json(),
    }
    return Output(doc, "\n".join(lines))


def _diff_line(diff: Any) -> str:
    key = ", ".join(f"{k}={v}" for k, v in diff.key.items()) or "new row"
    if diff.op == "insert":
        values = ", ".join(f"{k}={_short(v, 30)}" for k, v in (diff.after or {}).items())
        return f"  + {diff.table} ({key}): {values}"
    if diff.op == "delete":
        return f"  - {diff.table} ({key})"
    before, after = diff.before or {}, diff.after or {}
    changes = ", ".join(
        f"{c}: {_short(before.get(c), 30)} -> {_short(after.get(c), 30)}" for c in diff.changed
    )
    return f"  ~ {diff.table} ({key}): {changes or 'no field changes'}"


async def _fetch_decide(engine: Engine, args: argparse.Namespace) -> tuple[Run, list[str]]:
    token = await engine.get_token(args.token_id)
    run = None if token.run_id is None else await engine.get_run(token.run_id)
    if run is None or run.task != TASK_NAME:
        raise CliError(
            f"token {token.id} does not belong to a {TASK_NAME} run; use 'hitl complete' for it"
        )
    if token.status == TokenStatus.TIMED_OUT:
        raise CliError(f"token {token.id} expired: nothing was decided or written", EXPIRED)
    if token.status != TokenStatus.WAITING:
        raise CliError(f"token {token.id} is {token.status}: it was already decided")
    others = await engine.running_engines()
    if not others:
        await engine.start()
    try:
        await decide(engine, args.targets, token.id, args.decision)
    except (EditRefused, OutputRefused) as exc:
        raise CliError(f"{exc}; run {run.id} still waits", INVALID_EDIT) from None
    except TokenAlreadyFinished as exc:
        if exc.status != "TIMED_OUT":  # TokenExpired too: this completion came past the deadline
            raise
        raise CliError(
            f"token {token.id} expired: nothing was decided or written", EXPIRED
        ) from None
    try:
        async with asyncio.timeout(args.wait):
            if others:  # a console executes it: watch the store until it is done
                while (run := await engine.get_run(run.id)).status not in FINISHED:
                    await asyncio.sleep(0.05)
            else:
                run = await engine.wait_for(run.id, FINISHED, timeout=args.wait)
    except TimeoutError:
        raise CliError(
            f"decided; run {run.id} did not finish within {args.wait} s "
            f"(it is {(await engine.get_run(run.id)).status})"
        ) from None
    if run.status != RunStatus.COMPLETED:
        raise CliError(f"decided; but run {run.id} ended {run.status}: {run.error}", RUN_FAILED)
    return run, others


def _render_decide(fetched: tuple[Run, list[str]], args: argparse.Namespace) -> Output:
    run, others = fetched
    outcome = Outcome.from_json(run.output)
    where = "by the running console" if others else "here"
    lines = [f"{outcome.outcome}: {outcome.message}", f"run {run.id} finished {where}"]
    for conflict in outcome.conflicts:
        columns = ", ".join(f"{c}: {a} -> {b}" for c, (a, b) in conflict["columns"].items())
        lines.append(f"  {conflict['table']} {conflict['key']}: {conflict['message']} {columns}")
    for problem in outcome.problems:
        lines.append(f"  change {problem['index']}: {problem['message']}")
    code = OUTCOME_CODES[outcome.outcome]
    return Output({"run": _record(run), "outcome": outcome.to_json()}, "\n".join(lines), code)


# ---------------------------------------------------------------- rendering


def _show_text(run: Run, steps: list[Step], tokens: list[Token]) -> str:
    status = str(run.status)
    if run.waiting_token_id:
        status += f" (waiting on token {run.waiting_token_id})"
    fields_ = [
        ("run", run.id),
        ("task", run.task),
        ("status", status),
        ("tags", _tags(run.tags)),
        ("created", _when(run.created_at)),
        ("updated", _when(run.updated_at)),
        ("finished", _when(run.finished_at)),
        ("idempotency key", run.idempotency_key or "-"),
    ]
    width = max(len(name) for name, _ in fields_)
    parts = ["\n".join(f"{name.ljust(width)}  {value}" for name, value in fields_)]
    parts.append("payload\n" + _indent(_pretty(_record(run)["payload"])))
    if run.status == RunStatus.COMPLETED:
        parts.append("output\n" + _indent(_pretty(run.output)))
    if run.error is not None:
        parts.append("error\n" + _indent(run.error))
    if run.traceback:
        parts.append("traceback\n" + _indent(run.traceback.rstrip()))
    waited = {t.id: t for t in tokens}
    rows = [
        [
            str(s.position),
            s.kind,
            s.name,
            "yes" if s.ok else "no",
            str(s.attempts),
            _when(s.started_at),
            _duration(_step_seconds(s, waited)),
            _short(s.error if s.error is not None else s.result),
        ]
        for s in steps
    ]
    headers = ["#", "KIND", "NAME", "OK", "TRIES", "STARTED", "TOOK", "RESULT / ERROR"]
    parts.append(f"steps ({len(steps)})\n" + _indent(_table(headers, rows, empty="no steps yet")))
    parts.append(f"tokens ({len(tokens)})\n" + _indent(_token_table(tokens)))
    return "\n\n".join(parts)


def _step_seconds(step: Step, tokens: dict[str, Token]) -> float:
    """How long a step took; for a wait, how long its token waited (the engine records a wait
    at the moment it resolves, so its own duration is always zero)."""
    token = tokens.get(step.name) if step.kind == "wait" else None
    if token is not None and token.completed_at is not None:
        return (token.completed_at - token.created_at).total_seconds()
    return step.duration_s


def _token_table(tokens: list[Token]) -> str:
    rows = [
        [
            t.id,
            t.status,
            t.run_id or "-",
            _tags(t.tags),
            _when(t.expires_at),
            _when(t.completed_at),
        ]
        for t in tokens
    ]
    headers = ["TOKEN", "STATUS", "RUN", "TAGS", "EXPIRES", "FINISHED"]
    return _table(headers, rows, empty="no tokens")


def _table(headers: list[str], rows: list[list[str]], empty: str = "none") -> str:
    if not rows:
        return f"({empty})"
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def _footer(count: int, limit: int, noun: str) -> str:
    if count == 0:
        return ""
    more = f"; there may be more: raise --limit past {limit}" if count >= limit else ""
    return f"\n\n{count} {noun}{'' if count == 1 else 's'}{more}"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def _tags(tags: Sequence[str]) -> str:
    return ",".join(tags) or "-"


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def _record(record: Run | Token | Step) -> dict[str, Any]:
    # is_cached only means something to the caller of trigger()/create_token().
    doc = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "is_cached"}
    payload = doc.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("target"), str):
        # Runs stored by earlier versions carried their target's URL: never print a password.
        doc["payload"] = {**payload, "target": redact_url(payload["target"])}
    return doc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    first = message[0] if message else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
