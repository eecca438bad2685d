"""The built-in task ``db-change``: request → proposal → review → exactly-once write.

    run = await request_change(engine, ChangeRequest("Refund $20 on invoice 1042", target=url))
    # ... the run waits; a reviewer reads review_from_steps(await engine.get_steps(run.id))
    await decide(engine, token_id, Decision(approve=True, reviewer="ana"))

The run's payload is a `ChangeRequest` (everything it needs, so any process on the store can
resume it); its ``propose`` step records the `Review`; its token is tagged with the tables the
proposal touches; its output is an `Outcome`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from ..engine import Engine, InvalidDuration, Run, RunContext, Token, redact_url, task, wait
from ..engine.serde import seconds as duration_seconds
from .apply import apply_proposal, ensure_markers, outcome_of, with_edits, writer_engine
from .catalogue import Catalogue, reflect_catalogue
from .demo_db import DEFAULT_DENY
from .diff import diff_proposal, diffs_from_json
from .errors import AgentError, Problem, ProposalInvalid
from .offline import OfflineProposer
from .proposal import Proposal
from .proposer import ProposalSession, Proposer, ReadTools
from .review import PROPOSE_STEP, TASK_NAME, Decision, Edit, Outcome, Review, review_from_steps
from .validation import DEFAULT_MAX_ROWS, validate

ProposerKind = Literal["offline", "openai"]


class RequestInvalid(AgentError):
    """A change request that cannot be run (empty text, bad target URL, unknown proposer…)."""


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """What a `db-change` run is asked to do, and with which target and proposer."""

    request: str
    target: str
    """SQLAlchemy URL of the target database (sync driver: ``sqlite:///…``, ``postgresql://…``)."""
    proposer: ProposerKind = "offline"
    model: str = "gpt-4o"
    base_url: str | None = None
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = DEFAULT_DENY
    max_rows: int = DEFAULT_MAX_ROWS
    timeout: str = "24h"
    """How long the review may wait; then the run ends as expired, writing nothing."""

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "target": self.target,
            "proposer": self.proposer,
            "model": self.model,
            "base_url": self.base_url,
            "allow": None if self.allow is None else list(self.allow),
            "deny": list(self.deny),
            "max_rows": self.max_rows,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: Any) -> ChangeRequest:
        """Parse and check a payload; raises `RequestInvalid` naming the problem."""
        if not isinstance(data, Mapping):
            raise RequestInvalid(f"a db-change payload is a JSON object, not {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise RequestInvalid(f"unknown field(s) in a db-change payload: {sorted(unknown)}")
        request = data.get("request")
        if not isinstance(request, str) or not request.strip():
            raise RequestInvalid("the request is empty: say what should change")
        if len(request) > 4000:
            raise RequestInvalid(f"the request is {len(request)} characters; the limit is 4000")
        target = data.get("target")
        if not isinstance(target, str) or not target:
            raise RequestInvalid("no target database: give its SQLAlchemy URL")
        try:
            sa.make_url(target)
        except sa.exc.ArgumentError:
            raise RequestInvalid(f"the target {target!r} is not a database URL") from None
        proposer = data.get("proposer", "offline")
        if proposer not in ("offline", "openai"):
            raise RequestInvalid(f"proposer must be 'offline' or 'openai', not {proposer!r}")
        max_rows = data.get("max_rows", DEFAULT_MAX_ROWS)
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
            raise RequestInvalid(f"max_rows must be a positive whole number, not {max_rows!r}")
        timeout = str(data.get("timeout", "24h"))
        try:
            duration_seconds(timeout)
        except InvalidDuration as exc:
            raise RequestInvalid(f"timeout: {exc}") from None
        allow = data.get("allow")
        return cls(
            request=request.strip(),
            target=target,
            proposer=proposer,
            model=str(data.get("model") or "gpt-4o"),
            base_url=data.get("base_url") or None,
            allow=None if allow is None else tuple(allow),
            deny=tuple(data.get("deny", DEFAULT_DENY)),
            max_rows=max_rows,
            timeout=timeout,
        )


def sync_url(url: str) -> sa.URL:
    """The target's URL with the sync driver the agent uses: psycopg for PostgreSQL, the
    standard library's sqlite3 for SQLite, whatever driver the URL named."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed


@dataclass(frozen=True)
class Target:
    """An open target database: a reader, a writer that locks, and its catalogue."""

    reader: sa.Engine
    writer: sa.Engine
    catalogue: Catalogue

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()


_targets: dict[tuple[str, tuple[str, ...] | None, tuple[str, ...]], Target] = {}
_targets_lock = threading.Lock()


def _open_target(change: ChangeRequest) -> Target:
    key = (change.target, change.allow, change.deny)
    with _targets_lock:
        found = _targets.get(key)
        if found is not None:
            return found
        url = sync_url(change.target)
        reader = sa.create_engine(url)
        writer = writer_engine(url)
        try:
            catalogue = reflect_catalogue(reader, allow=change.allow, deny=change.deny)
            ensure_markers(writer)
        except Exception:
            reader.dispose()
            writer.dispose()
            raise
        _targets[key] = target = Target(reader, writer, catalogue)
        return target


async def open_target(change: ChangeRequest) -> Target:
    """The target of *change*, reflected once per process and kept open (see `close_targets`)."""
    return await asyncio.to_thread(_open_target, change)


def close_targets() -> None:
    """Dispose of every target this process opened (the app and tests call it on exit)."""
    with _targets_lock:
        for target in _targets.values():
            target.dispose()
        _targets.clear()


def make_proposer(change: ChangeRequest) -> Proposer:
    if change.proposer == "offline":
        return OfflineProposer()
    from .llm import OpenAIProposer  # the openai client loads only when a model is used

    # A replay needs no key (every model call is recorded); a real call without one fails clearly.
    return OpenAIProposer(model=change.model, base_url=change.base_url, api_key=_api_key())


def _api_key() -> str | None:
    from .. import secrets

    return secrets.get_api_key()


def _review(target: Target, change: ChangeRequest, label: str, wire: dict[str, Any]) -> Any:
    proposal = Proposal.model_validate(wire)
    validated = validate(proposal, target.catalogue, target.reader, max_rows=change.max_rows)
    diffs = diff_proposal(validated, target.reader)
    return Review(
        request=change.request,
        summary=proposal.summary,
        rationale=proposal.rationale,
        proposal=proposal.to_wire(),
        diffs=tuple(diffs),
        tables=proposal.tables,
        target=redact_url(change.target),  # the review is stored: no password
        proposer=label,
    ).to_json()


def _apply(
    target: Target, change: ChangeRequest, review: Review, decision: Decision, run_id: str
) -> dict[str, Any]:
    proposal = Proposal.model_validate(review.proposal)
    result: Any
    try:
        edited = with_edits(proposal, decision.edits)
    except ProposalInvalid as exc:
        result = exc
    else:
        result = apply_proposal(
            target.writer,
            target.catalogue,
            edited,
            diffs_from_json([d.to_json() for d in review.diffs]),
            run_id=run_id,
            step="apply",
            max_rows=change.max_rows,
        )
    outcome = outcome_of(
        result, reviewer=decision.reviewer, comment=decision.comment, edited=bool(decision.edits)
    )
    return outcome.to_json()


@task(TASK_NAME)
async def db_change(ctx: RunContext, payload: Any) -> dict[str, Any]:
    """Propose a change for *payload*'s request, wait for a reviewer, then write it or not."""
    change = ChangeRequest.from_json(payload)
    target = await open_target(change)
    proposer = make_proposer(change)
    session = ProposalSession(
        request=change.request,
        catalogue=target.catalogue,
        tools=ReadTools(target.catalogue, target.reader),
        recorder=ctx,
        max_rows=change.max_rows,
    )
    proposal = await proposer.propose(session)
    review = Review.from_json(
        await ctx.step(
            PROPOSE_STEP,
            asyncio.to_thread,
            _review,
            target,
            change,
            proposer.label,
            proposal.to_wire(),
        )
    )
    token = await wait.create_token(timeout=change.timeout, tags=list(review.tables))
    result = await wait.for_token(token)
    if not result.ok:
        return Outcome(
            "expired", None, None, f"no decision within {change.timeout}; nothing was written"
        ).to_json()
    decision = Decision.from_json(result.output)
    if not decision.approve:
        reason = f": {decision.comment}" if decision.comment else ""
        return Outcome(
            "rejected",
            decision.reviewer,
            decision.comment,
            f"rejected by {decision.reviewer}{reason}; nothing was written",
        ).to_json()
    outcome: dict[str, Any] = await ctx.step(
        "apply", asyncio.to_thread, _apply, target, change, review, decision, ctx.run_id
    )
    return outcome


async def request_change(
    engine: Engine, change: ChangeRequest, *, idempotency_key: str | None = None
) -> Run:
    """Trigger a `db-change` run for *change* (checked first: `RequestInvalid`)."""
    payload = ChangeRequest.from_json(change.to_json()).to_json()
    return await engine.trigger(
        TASK_NAME, payload, idempotency_key=idempotency_key, tags=[TASK_NAME]
    )


async def decide(engine: Engine, token_id: str, decision: Decision) -> Token:
    """Complete a review's token with *decision*. Raises the engine's `TokenAlreadyFinished`
    when the token was decided or timed out meanwhile (nothing changes then)."""
    return await engine.complete_token(token_id, decision.to_json())


async def check_edits(engine: Engine, run_id: str, edits: tuple[Edit, ...]) -> list[Problem]:
    """What would be wrong with approving *run_id* with *edits*, checked against the target now;
    empty when the edits are fine. The console calls it before deciding, so that a reviewer can
    correct an edit instead of ending the run as ``invalid_edit``."""
    run = await engine.get_run(run_id)
    review = review_from_steps(await engine.get_steps(run_id))
    if review is None:
        raise RequestInvalid(f"run {run_id} has no proposal to edit yet")
    change = ChangeRequest.from_json(run.payload)
    target = await open_target(change)

    def check() -> list[Problem]:
        try:
            edited = with_edits(Proposal.model_validate(review.proposal), edits)
            validate(edited, target.catalogue, target.reader, max_rows=change.max_rows)
        except ProposalInvalid as exc:
            return list(exc.problems)
        return []

    return await asyncio.to_thread(check)
