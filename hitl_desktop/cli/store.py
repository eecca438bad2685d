"""The commands that read a store and complete its tokens: runs, tokens, show, complete."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from ..agent import (
    TASK_NAME,
    ChangeSet,
    RevertState,
    Review,
    Targets,
    read_change_set,
    revert_state,
    review_from_steps,
)
from ..application import Decided
from ..engine import (
    DecisionRefused,
    Engine,
    OutputRefused,
    Run,
    RunStatus,
    Step,
    Token,
    TokenExpired,
    TokenStatus,
)
from .command import StoreCommand
from .errors import EXPIRED, USAGE, CliError, Output
from .inputs import parse_data, store_url
from .render import (
    duration,
    footer,
    indent,
    part_lines,
    part_record,
    pretty,
    record,
    short,
    table,
    tags,
    token_table,
    when,
)


@dataclass(frozen=True)
class Runs(StoreCommand[list[Run]]):
    """`hitl runs`: runs, newest first."""

    store: str
    status: RunStatus | None
    task: str | None
    limit: int

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Runs:
        return cls(store_url(args.store), args.status, args.task, args.limit)

    async def fetch(self, engine: Engine, targets: Targets) -> list[Run]:
        return await engine.list_runs(status=self.status, task=self.task, limit=self.limit)

    def render(self, result: list[Run]) -> Output:
        rows = [
            [r.id, r.task, r.status, when(r.created_at), tags(r.tags), r.waiting_token_id or "-"]
            for r in result
        ]
        headers = ["RUN", "TASK", "STATUS", "CREATED", "TAGS", "WAITING ON"]
        text = table(headers, rows, empty="no runs") + footer(len(result), self.limit, "run")
        return Output({"runs": [record(r) for r in result]}, text)


@dataclass(frozen=True)
class Tokens(StoreCommand[list[Token]]):
    """`hitl tokens`: tokens, newest first."""

    store: str
    status: TokenStatus | None
    tags: list[str]
    run_id: str | None
    limit: int

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Tokens:
        return cls(store_url(args.store), args.status, args.tag or [], args.run_id, args.limit)

    async def fetch(self, engine: Engine, targets: Targets) -> list[Token]:
        if self.run_id is not None:
            await engine.get_run(self.run_id)  # an unknown run is an error, not an empty list
        return await engine.list_tokens(
            status=self.status, tags=self.tags, run_id=self.run_id, limit=self.limit
        )

    def render(self, result: list[Token]) -> Output:
        text = token_table(result) + footer(len(result), self.limit, "token")
        return Output({"tokens": [record(t) for t in result]}, text)


Shown = tuple[Run, list[Step], list[Token], RevertState | None, ChangeSet | None]


@dataclass(frozen=True)
class Show(StoreCommand[Shown]):
    """`hitl show`: a run, its steps and its tokens."""

    store: str
    run_id: str

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Show:
        return cls(store_url(args.store), args.run_id)

    async def fetch(self, engine: Engine, targets: Targets) -> Shown:
        run = await engine.get_run(self.run_id)
        steps = await engine.get_steps(run.id)
        tokens = await engine.list_tokens(run_id=run.id, limit=1000)
        reverting = await revert_state(engine, run.id) if run.task == TASK_NAME else None
        found = await read_change_set(engine, run.id) if run.task == TASK_NAME else None
        return run, steps, tokens, reverting, found

    def render(self, result: Shown) -> Output:
        run, steps, tokens, reverting, found = result
        decided = _decided(steps, tokens)
        doc = {
            "run": record(run),
            "requested_by": run.created_by,
            "decided_by": None if decided is None else decided.by,
            "decided_at": None if decided is None else decided.at.astimezone(UTC).isoformat(),
            "steps": [{**record(s), "duration_s": s.duration_s} for s in steps],
            "tokens": [record(t) for t in tokens],
        }
        text = _show_text(run, steps, tokens, decided)
        if found is not None:
            doc["apply"] = found.apply
            doc["parts"] = [part_record(part) for part in found.parts]
            text += "\n\n" + "\n".join(part_lines(found))
        if reverting is not None:
            doc["revert"] = {
                "reverts": reverting.reverts,
                "reverted_by": list(reverting.reverted_by),
                "reverted": reverting.reverted,
                "revertible": reverting.revertible,
            }
            text += "\n\n" + _revert_text(reverting)
        return Output(doc, text)


@dataclass(frozen=True)
class Complete(StoreCommand[tuple[Token, Run | None]]):
    """`hitl complete`: complete a waiting token; its run resumes in the console."""

    store: str
    token_id: str
    output: Any

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Complete:
        return cls(store_url(args.store), args.token_id, parse_data(args.data))

    async def fetch(self, engine: Engine, targets: Targets) -> tuple[Token, Run | None]:
        # The task's own output check (a db-change decision) runs where the completion commits:
        # a malformed output is refused there and the token keeps waiting.
        try:
            token = await engine.complete_token(self.token_id, self.output)
        except OutputRefused as exc:
            raise CliError(
                f"{exc} (for a db-change review use hitl approve/reject, or --data "
                '\'{"decision": "approve", "reviewer": "ana"}\')',
                USAGE,
            ) from None
        except TokenExpired as exc:
            raise CliError(str(exc), EXPIRED) from None
        except DecisionRefused as exc:
            raise CliError(
                f"{exc}: a review's token is decided with hitl approve/reject", USAGE
            ) from None
        # Read back: a running console may already have claimed (or even finished) the run.
        run = None if token.run_id is None else await engine.get_run(token.run_id)
        return token, run

    def render(self, result: tuple[Token, Run | None]) -> Output:
        token, run = result
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
        doc = {"token": record(token), "run": None if run is None else record(run)}
        return Output(doc, "\n".join(lines))


def _decided(steps: list[Step], tokens: list[Token]) -> Decided | None:
    """Who decided the run's newest completed token (its review, for a db-change run)."""
    token = next((t for t in tokens if t.status is TokenStatus.COMPLETED), None)
    review: Review | None
    try:
        review = review_from_steps(steps)
    except (KeyError, TypeError, ValueError):
        review = None
    return Decided.of(token, review)


def _show_text(run: Run, steps: list[Step], tokens: list[Token], decided: Decided | None) -> str:
    status = str(run.status)
    if run.waiting_token_id:
        status += f" (waiting on token {run.waiting_token_id})"
    fields_ = [
        ("run", run.id),
        ("task", run.task),
        ("status", status),
        ("tags", tags(run.tags)),
        ("requested by", run.created_by or "-"),
        ("decided", "-" if decided is None else decided.sentence(when(decided.at))),
        ("created", when(run.created_at)),
        ("updated", when(run.updated_at)),
        ("finished", when(run.finished_at)),
        ("idempotency key", run.idempotency_key or "-"),
    ]
    width = max(len(name) for name, _ in fields_)
    parts = ["\n".join(f"{name.ljust(width)}  {value}" for name, value in fields_)]
    parts.append("payload\n" + indent(pretty(record(run)["payload"])))
    if run.status == RunStatus.COMPLETED:
        parts.append("output\n" + indent(pretty(run.output)))
    if run.error is not None:
        parts.append("error\n" + indent(run.error))
    if run.traceback:
        parts.append("traceback\n" + indent(run.traceback.rstrip()))
    waited = {t.id: t for t in tokens}
    rows = [
        [
            str(s.position),
            s.kind,
            s.name,
            "yes" if s.ok else "no",
            str(s.attempts),
            when(s.started_at),
            duration(_step_seconds(s, waited)),
            short(s.error if s.error is not None else s.result),
        ]
        for s in steps
    ]
    headers = ["#", "KIND", "NAME", "OK", "TRIES", "STARTED", "TOOK", "RESULT / ERROR"]
    parts.append(f"steps ({len(steps)})\n" + indent(table(headers, rows, empty="no steps yet")))
    parts.append(f"tokens ({len(tokens)})\n" + indent(token_table(tokens)))
    return "\n\n".join(parts)


def _revert_text(state: RevertState) -> str:
    lines = []
    if state.reverts is not None:
        lines.append(f"reverts run {state.reverts}")
    if state.reverted_by:
        lines.append(f"reverted by run {', run '.join(state.reverted_by)}")
    if state.revertible:
        lines.append(f"revertible: hitl revert {state.run_id}")
    else:
        lines.append(f"not revertible: {state.reason}")
    return "revert\n" + indent("\n".join(lines))


def _step_seconds(step: Step, tokens: dict[str, Token]) -> float:
    """How long a step took; for a wait, how long its token waited (the engine records a wait
    at the moment it resolves, so its own duration is always zero)."""
    token = tokens.get(step.name) if step.kind == "wait" else None
    if token is not None and token.completed_at is not None:
        return (token.completed_at - token.created_at).total_seconds()
    return step.duration_s
