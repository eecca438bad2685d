"""The commands of the built-in `db-change` task: demo-db, request, approve and reject."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from ..agent import (
    TASK_NAME,
    ChangeRequest,
    ChangeSet,
    Decision,
    DecisionInvalid,
    EditRefused,
    Outcome,
    RequestInvalid,
    Review,
    Targets,
    create_demo_db,
    decide,
    parse_edits,
    read_change_set,
    request_change,
    review_from_steps,
)
from ..application import change_request
from ..config import ConfigError, load_settings, sqlite_url
from ..engine import (
    DecisionRefused,
    Engine,
    OutputRefused,
    Run,
    RunStatus,
    Token,
    TokenAlreadyFinished,
    TokenStatus,
)
from .command import Command, StoreCommand
from .errors import (
    EXPIRED,
    INVALID_EDIT,
    OUTCOME_CODES,
    REFUSED,
    RUN_FAILED,
    USAGE,
    CliError,
    Output,
)
from .inputs import parse_data, store_url
from .render import diff_line, part_lines, part_record, record

FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


@dataclass(frozen=True)
class DemoDb(Command[Path]):
    """`hitl demo-db`: write the demo target database (a SQLite file)."""

    path: Path
    overwrite: bool

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> DemoDb:
        return cls(Path(args.path).expanduser().absolute(), args.overwrite)

    def execute(self) -> Path:
        path = self.path
        if not path.parent.is_dir():
            raise CliError(f"no directory {path.parent}")
        try:
            create_demo_db(path, overwrite=self.overwrite)
        except FileExistsError:
            raise CliError(f"{path} exists (pass --overwrite to replace it)") from None
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc}") from None
        return path

    def render(self, result: Path) -> Output:
        url = sqlite_url(result)
        return Output(
            {"path": str(result), "url": url},
            f"wrote the demo database {result}\nuse it with: hitl profile add NAME --target "
            f"{result} --deny customers.password_hash, then hitl request TEXT --profile NAME",
        )


Requested = tuple[Run, Review | None, ChangeSet | None]


@dataclass(frozen=True)
class Request(StoreCommand[Requested]):
    """`hitl request`: run db-change until it waits for review."""

    store: str
    change: ChangeRequest
    wait: int

    executes_runs: ClassVar[bool] = True

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Request:
        store = store_url(args.store, create=True)
        change = _change_request(args.text, args.profile, args.timeout)
        return cls(store, replace(change, apply=args.apply), args.wait)

    async def fetch(self, engine: Engine, targets: Targets) -> Requested:
        await engine.start()
        run = await request_change(engine, self.change)
        try:
            run = await engine.wait_for(run.id, timeout=self.wait)
        except TimeoutError:
            raise CliError(
                f"run {run.id} was not ready for review within {self.wait} s; "
                "the console's engine carries on with it"
            ) from None
        if run.status == RunStatus.FAILED:
            raise CliError(f"run {run.id} failed: {run.error}", RUN_FAILED)
        review = review_from_steps(await engine.get_steps(run.id))
        return run, review, await read_change_set(engine, run.id)

    def render(self, result: Requested) -> Output:
        run, review, found = result
        token = run.waiting_token_id
        lines = [f"run {run.id} is {run.status}"]
        if review is not None and found is not None:
            token = None  # the run waits on its parts' tokens together: each is decided alone
            lines += [
                f"summary: {review.summary}",
                f"proposed by {review.proposer} for {review.target}",
                *part_lines(found),
            ]
            lines += [
                f"part {part.number}: approve: hitl approve {part.token_id}    "
                f"reject: hitl reject {part.token_id}"
                for part in found.waiting()
            ]
        elif review is not None:
            lines += [
                f"token {token}",
                f"summary: {review.summary}",
                f"proposed by {review.proposer} for {review.target}",
                *(diff_line(diff) for diff in review.diffs),
                f"approve: hitl approve {token}    reject: hitl reject {token}",
            ]
        doc: dict[str, Any] = {
            "run": record(run),
            "token_id": token,
            "review": None if review is None else review.to_json(),
        }
        if found is not None:
            doc["apply"] = found.apply
            doc["parts"] = [part_record(part) for part in found.parts]
        return Output(doc, "\n".join(lines))


@dataclass(frozen=True)
class Decided:
    run: Run
    others: list[str]
    """Engines already executing runs on the store (then one of them finishes the run)."""
    token: Token
    """The review's token after the decision: WAITING when more approvals are needed."""
    change_set: ChangeSet | None = None
    """A change set whose other parts still wait (its run goes on waiting)."""


@dataclass(frozen=True)
class Decide(StoreCommand[Decided]):
    """`hitl approve` and `hitl reject`: decide a review, then drive its run to the end (or
    watch the running console do it)."""

    store: str
    token_id: str
    decision: Decision
    wait: int

    executes_runs: ClassVar[bool] = True

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Decide:
        store = store_url(args.store)
        decision = _decision(args.command, args.reviewer, args.comment, getattr(args, "edit", None))
        return cls(store, args.token_id, decision, args.wait)

    async def fetch(self, engine: Engine, targets: Targets) -> Decided:
        token = await engine.get_token(self.token_id)
        run = None if token.run_id is None else await engine.get_run(token.run_id)
        if run is None or run.task != TASK_NAME:
            raise CliError(
                f"token {token.id} does not belong to a {TASK_NAME} run; use 'hitl complete' for it"
            )
        expired = f"token {token.id} expired: nothing was decided or written"
        if token.status == TokenStatus.TIMED_OUT:
            raise CliError(expired, EXPIRED)
        if token.status != TokenStatus.WAITING:  # the engine's words: who decided, and when
            at = None if token.completed_at is None else token.completed_at.timestamp()
            raise TokenAlreadyFinished(token.id, str(token.status), token.completed_by, at)
        others = await engine.running_engines()
        if not others:
            await engine.start()
        try:
            token = await decide(engine, targets, token.id, self.decision)
        except (EditRefused, OutputRefused) as exc:
            raise CliError(f"{exc}; run {run.id} still waits", INVALID_EDIT) from None
        except DecisionRefused as exc:
            raise CliError(f"{exc}; run {run.id} still waits", REFUSED) from None
        except TokenAlreadyFinished as exc:
            # TIMED_OUT covers TokenExpired too: this very completion came past the deadline.
            if exc.status != "TIMED_OUT":
                raise
            raise CliError(expired, EXPIRED) from None
        if token.status == TokenStatus.WAITING:  # more approvals are needed
            return Decided(run, others, token)
        found = await read_change_set(engine, run.id)
        if found is not None and found.waiting():
            if found.apply == "each":
                found = await self._written(engine, run, found)
            return Decided(run, others, token, found)
        try:
            async with asyncio.timeout(self.wait):
                if others:  # a console executes it: watch the store until it is done
                    while (run := await engine.get_run(run.id)).status not in FINISHED:
                        await asyncio.sleep(0.05)
                else:
                    run = await engine.wait_for(run.id, FINISHED, timeout=self.wait)
        except TimeoutError:
            raise CliError(
                f"decided; run {run.id} did not finish within {self.wait} s "
                f"(it is {(await engine.get_run(run.id)).status})"
            ) from None
        if run.status != RunStatus.COMPLETED:
            raise CliError(f"decided; but run {run.id} ended {run.status}: {run.error}", RUN_FAILED)
        return Decided(run, others, token)

    async def _written(self, engine: Engine, run: Run, found: ChangeSet) -> ChangeSet:
        """*found* once the part just approved is written, in a change set written part by
        part (the engine executing the run writes it as soon as it resumes)."""
        try:
            async with asyncio.timeout(self.wait):
                while (part := found.part_of(self.token_id)) is not None and (
                    part.status == "approved"
                ):
                    await asyncio.sleep(0.05)
                    now = await read_change_set(engine, run.id)
                    assert now is not None
                    found = now
        except TimeoutError:
            raise CliError(
                f"approved; part {self.token_id} of run {run.id} was not written within "
                f"{self.wait} s (the run is {(await engine.get_run(run.id)).status})"
            ) from None
        return found

    def render(self, result: Decided) -> Output:
        run, others, token = result.run, result.others, result.token
        if token.status == TokenStatus.WAITING:
            return _still_waiting(run, token)
        if result.change_set is not None:
            return _part_decided(run, token, result.change_set)
        outcome = Outcome.from_json(run.output)
        where = "by the running console" if others else "here"
        lines = [f"{outcome.outcome}: {outcome.message}", f"run {run.id} finished {where}"]
        for part in outcome.parts:
            lines.append(f"  {part.name}: {part.outcome.outcome}: {part.outcome.message}")
        for conflict in outcome.conflicts:
            columns = ", ".join(f"{c}: {a} -> {b}" for c, (a, b) in conflict["columns"].items())
            lines.append(
                f"  {conflict['table']} {conflict['key']}: {conflict['message']} {columns}"
            )
        for problem in outcome.problems:
            lines.append(f"  change {problem['index']}: {problem['message']}")
        code = OUTCOME_CODES[outcome.outcome]
        return Output({"run": record(run), "outcome": outcome.to_json()}, "\n".join(lines), code)


def _part_decided(run: Run, token: Token, found: ChangeSet) -> Output:
    """A part of a change set was decided while others still wait."""
    part = found.part_of(token.id)
    assert part is not None
    count = len(found.parts)
    waiting = found.waiting()
    names = ", ".join(f"part {p.number} {p.name!r} (token {p.token_id})" for p in waiting)
    status = {"approved": "approved", "rejected": "rejected", "expired": "expired"}.get(
        part.status, f"approved and {part.status}"
    )
    lines = [f"part {part.number} of {count} {status}; waiting for {names}"]
    if part.outcome is not None:
        lines.append(f"  {part.outcome.message}")
    rejected = [p for p in found.parts if p.status == "rejected"]
    if found.apply == "all" and rejected:
        lines.append(
            f"part {rejected[0].number} was rejected: nothing of the change set will be written; "
            f"run {run.id} ends once the other parts are decided or expire"
        )
    elif found.apply == "all":
        lines.append(f"run {run.id} writes every part together once all are approved")
    else:
        lines.append(f"run {run.id} writes each other part as soon as it is approved")
    doc = {
        "run": record(run),
        "part": part_record(part),
        "apply": found.apply,
        "waiting_for": [part_record(p) for p in waiting],
        "parts": [part_record(p) for p in found.parts],
    }
    return Output(doc, "\n".join(lines))


def _still_waiting(run: Run, token: Token) -> Output:
    approved = [v for v in token.verdicts if v.approve]
    needed = token.requirement.approvals if token.requirement else 1
    rule = token.requirement.rule if token.requirement else None
    names = ", ".join(v.reviewer for v in approved)
    lines = [
        f"approved: {len(approved)} of {needed} approvals ({names})"
        + (f" under rule '{rule}'" if rule else ""),
        f"run {run.id} still waits for {needed - len(approved)} more",
    ]
    doc = {
        "run": record(run),
        "approvals": len(approved),
        "needed": needed,
        "rule": rule,
        "approved_by": [v.reviewer for v in approved],
    }
    return Output(doc, "\n".join(lines))


def _change_request(text: str, profile: str | None, timeout: str | None) -> ChangeRequest:
    try:
        return change_request(load_settings(), text, profile=profile, timeout=timeout)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except RequestInvalid as exc:
        raise CliError(str(exc), USAGE) from None


def _decision(verb: str, reviewer: str | None, comment: str | None, edit: str | None) -> Decision:
    reviewer = reviewer or getpass.getuser()
    edits: Any = ()
    try:
        if edit:
            edits = parse_edits(parse_data(edit, "--edit"))
        return Decision.from_json(
            {
                "decision": verb,
                "reviewer": reviewer,
                "comment": comment,
                "edits": [{"index": e.index, "values": e.values} for e in edits],
            }
        )
    except DecisionInvalid as exc:
        raise CliError(
            f"--edit: {exc}" if edits or verb == "approve" else str(exc), USAGE
        ) from None
