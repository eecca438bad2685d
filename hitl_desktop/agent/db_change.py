"""The built-in task ``db-change``: request → proposal → review → exactly-once write.

    targets = Targets({"shop": TargetProfile("shop", url)}, api_key=..., db_password=...)
    engine = Engine(store_url, tasks=[db_change_task(targets)])
    run = await request_change(engine, ChangeRequest("Refund $20 on invoice 1042", "shop"))
    # ... the run waits; a reviewer reads review_from_steps(await engine.get_steps(run.id))
    await decide(engine, targets, token_id, Decision(approve=True, reviewer="ana"))

The run's payload is a `ChangeRequest`: the request, the name of a target profile and how long
the review may wait. It is intent, not authority: the database, the model server, the allow and
deny lists and the row limit come from the executing machine's `Targets`. Its ``propose`` step
records the `Review`; its token is tagged with the tables the proposal touches; its output is an
`Outcome`.

A revert's payload also names the run it reverts and carries the rows that run wrote
(`images.RowImage`): its proposal is their inverse, not a proposer's, and its diffs start from the
rows as that apply left them, so a row changed since is a conflict (see `revert`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..engine import Engine, Requirement, Run, RunContext, TaskFn, Token, task, wait
from ..units.defaults import DEFAULT_TOKEN_TIMEOUT, OFFLINE
from ..units.durations import text_seconds
from ..units.urls import redact_url
from .apply import apply_proposal, outcome_of, with_edits
from .diff import Diff, diff_proposal, diffs_from_json, find_conflicts
from .edit_check import check_decision_edits
from .errors import AgentError, Problem, ProposalInvalid
from .images import NotRevertible, RowImage, images_from_json, inverse
from .offline import OfflineProposer
from .policy import PolicyInvalid, Rule, parse_policy
from .profiles import DEFAULT_PROFILE, TargetProfile, profile_name
from .proposal import Proposal
from .proposer import ProposalSession, Proposer, ReadTools
from .reads import Read, parent_reads, unique_reads
from .review import PROPOSE_STEP, TASK_NAME, Decision, Edit, Outcome, Review, review_from_steps
from .tags import token_tags
from .targets import Target, Targets
from .validation import validate

_AUTHORITY = ("target", "base_url", "allow", "deny", "proposer", "model", "max_rows")
"""Fields older payloads carried and no payload may carry now: a run cannot choose them."""


class RequestInvalid(AgentError):
    """A change request that cannot be run (empty text, an unknown profile, a bad timeout…)."""


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """What a `db-change` run is asked to do, and under which target profile."""

    request: str
    profile: str = DEFAULT_PROFILE
    """The name of the target profile, resolved by the machine that executes the run."""
    timeout: str = DEFAULT_TOKEN_TIMEOUT
    """How long the review may wait; then the run ends as expired, writing nothing."""
    target_id: str | None = None
    """The profile's `TargetProfile.target_id` where the request was made: a machine whose
    profile of that name points at another database refuses the run (None: not checked)."""
    reverts: str | None = None
    """A revert's: the id of the applied run it undoes."""
    written: tuple[RowImage, ...] = ()
    """A revert's: the rows that run wrote, as its apply recorded them."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "request": self.request,
            "profile": self.profile,
            "timeout": self.timeout,
        }
        if self.target_id is not None:
            data["target_id"] = self.target_id
        if self.reverts is not None:
            data["reverts"] = self.reverts
            data["written"] = [image.to_json() for image in self.written]
        return data

    @classmethod
    def from_json(cls, data: Any) -> ChangeRequest:
        """Parse and check a payload; raises `RequestInvalid` naming the problem."""
        if not isinstance(data, Mapping):
            raise RequestInvalid(f"a db-change payload is a JSON object, not {type(data).__name__}")
        if grabbed := sorted(set(data) & set(_AUTHORITY)):
            raise RequestInvalid(
                f"the payload sets {', '.join(map(repr, grabbed))}: what a run may reach comes "
                "from the target profile of the machine that executes it, never from the run"
            )
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise RequestInvalid(f"unknown field(s) in a db-change payload: {sorted(unknown)}")
        request = data.get("request")
        if not isinstance(request, str) or not request.strip():
            raise RequestInvalid("the request is empty: say what should change")
        if len(request) > 4000:
            raise RequestInvalid(f"the request is {len(request)} characters; the limit is 4000")
        profile = data.get("profile", DEFAULT_PROFILE)
        try:
            profile_name(profile)
        except ValueError as exc:
            raise RequestInvalid(str(exc)) from None
        timeout = data.get("timeout", DEFAULT_TOKEN_TIMEOUT)
        if not isinstance(timeout, str):
            raise RequestInvalid(f"timeout must be a duration such as '24h', not {timeout!r}")
        try:
            text_seconds(timeout)
        except ValueError:
            raise RequestInvalid(
                f"timeout: invalid duration {timeout!r}: use a string like '500ms', '30s', '10m', "
                "'2h', '1d'"
            ) from None
        target_id = data.get("target_id")
        if target_id is not None and not isinstance(target_id, str):
            raise RequestInvalid(f"target_id must be text, not {target_id!r}")
        reverts, written = data.get("reverts"), data.get("written")
        if (reverts is None) != (written is None):
            raise RequestInvalid("a revert's payload names the run it reverts and its rows, both")
        if reverts is not None and (not isinstance(reverts, str) or not reverts):
            raise RequestInvalid(f"reverts must be a run id, not {reverts!r}")
        try:
            images = images_from_json(written or [])
        except (TypeError, ValueError, KeyError) as exc:
            raise RequestInvalid(f"the written rows of a revert's payload: {exc}") from None
        return cls(request.strip(), profile, timeout, target_id, reverts, images)


def make_proposer(profile: TargetProfile, targets: Targets) -> Proposer:
    if profile.proposer == OFFLINE:
        return OfflineProposer()
    from .llm import OpenAIProposer  # the openai client loads only when a model is used

    # The key goes to the profile's own server only. A replay needs no key (every model call is
    # recorded); a real call without one fails clearly.
    return OpenAIProposer(model=profile.model, base_url=profile.base_url, api_key=targets.api_key())


def _review(
    target: Target,
    change: ChangeRequest,
    profile: TargetProfile,
    label: str,
    wire: dict[str, Any],
    reads: tuple[Read, ...] = (),
) -> Any:
    proposal = Proposal.model_validate(wire)
    validated = validate(proposal, target.catalogue, target.reader, max_rows=profile.max_rows)
    diffs = diff_proposal(validated, target.reader)
    return Review(
        request=change.request,
        summary=proposal.summary,
        rationale=proposal.rationale,
        proposal=proposal.to_wire(),
        diffs=tuple(diffs),
        tables=proposal.tables,
        target=redact_url(profile.target_url),
        proposer=label,
        reads=unique_reads([*reads, *parent_reads(validated, target.reader)]),
    ).to_json()


async def _propose(
    target: Target,
    change: ChangeRequest,
    profile: TargetProfile,
    label: str,
    wire: dict[str, Any],
    reads: tuple[Read, ...],
) -> Any:
    """The review, with the approval policy's rule that matches it. The policy is read here,
    inside the step, so that a replay sees the rule the first execution matched. A policy that
    cannot be read fails the run: it never falls back to no policy."""
    record = await wait.current_policy()
    data = await asyncio.to_thread(_review, target, change, profile, label, wire, reads)
    return _with_rule(data, record, profile)


def _with_rule(data: dict[str, Any], record: Any, profile: TargetProfile) -> dict[str, Any]:
    """*data* (a review) with the rule of the policy *record* that matches it, if any."""
    if record is not None:
        try:
            policy = parse_policy(record.text)
        except PolicyInvalid as exc:
            raise PolicyInvalid(
                f"the approval policy in force (version {record.version}) cannot be read: {exc}"
            ) from exc
        review = Review.from_json(data)
        rule = policy.match(profile.name, review.diffs)
        if rule is not None:
            data["rule"] = {**rule.to_json(), "policy_version": record.version}
    return data


REVERT_CHECK_STEP = "revert-check"
"""A revert's step that compares the rows with those its reverted run's apply left."""


def _revert_review(target: Target, change: ChangeRequest, profile: TargetProfile) -> Any:
    """A revert's review: the inverse of the rows its run wrote, checked against the catalogue
    (the rows themselves are checked by `REVERT_CHECK_STEP` and again by the apply)."""
    try:
        changes, diffs = inverse(change.written)
    except NotRevertible as exc:
        raise RequestInvalid(f"run {change.reverts} cannot be reverted: {exc}") from None
    proposal = Proposal(
        summary=f"Revert run {change.reverts}: undo the {len(diffs)} row change(s) it wrote.",
        rationale=f"The inverse of what run {change.reverts} wrote, from the rows its apply "
        "recorded; a row changed since that apply is a conflict and nothing is written.",
        changes=changes,
    )
    validate(proposal, target.catalogue, None, max_rows=profile.max_rows)
    return Review(
        request=change.request,
        summary=proposal.summary,
        rationale=proposal.rationale,
        proposal=proposal.to_wire(),
        diffs=tuple(diffs),
        tables=proposal.tables,
        target=redact_url(profile.target_url),
        proposer=f"revert of run {change.reverts}",
    ).to_json()


async def _propose_revert(target: Target, change: ChangeRequest, profile: TargetProfile) -> Any:
    """The revert's review with the policy's matching rule, read inside the step (as `_propose`)."""
    record = await wait.current_policy()
    data = await asyncio.to_thread(_revert_review, target, change, profile)
    return _with_rule(data, record, profile)


def _changed_since(target: Target, diffs: tuple[Diff, ...]) -> list[dict[str, Any]]:
    """The rows that differ now from those the reverted apply left (conflicts, JSON)."""
    with target.reader.connect() as conn:
        found = find_conflicts(conn, target.catalogue, diffs, for_update=False)
    return [conflict.to_json() for conflict in found]


def _changed_outcome(run_id: str | None, conflicts: list[dict[str, Any]]) -> Outcome:
    first = conflicts[0]
    shown = ", ".join(f"{c} {a!r} → {b!r}" for c, (a, b) in first["columns"].items())
    what = f" ({shown})" if shown else f": {first['message'].replace(' since the proposal', '')}"
    return Outcome(
        "conflict",
        None,
        None,
        f"nothing was written: {first['table']} {first['key']} changed since run {run_id} "
        f"applied it{what}",
        conflicts=tuple(conflicts),
    )


def requirement(review: Review) -> Requirement:
    """What deciding *review* takes: its rule's, or one approval by anyone; always the hash of
    its diffs, so that a decision on anything else is refused."""
    if review.rule is None:
        return Requirement(seen=review.diff_hash)
    rule = Rule.from_json(review.rule)
    return Requirement(
        rule=rule.name,
        approvals=rule.approvals,
        approvers=rule.approvers,
        self_approval=rule.self_approval,
        remind_after=rule.remind_after,
        escalate_to=rule.escalate_to,
        seen=review.diff_hash,
    )


def _apply(
    target: Target,
    profile: TargetProfile,
    review: Review,
    decision: Decision,
    run_id: str,
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
            max_rows=profile.max_rows,
            reads=review.reads,
        )
    outcome = outcome_of(
        result, reviewer=decision.reviewer, comment=decision.comment, edited=bool(decision.edits)
    )
    return outcome.to_json()


def _check_decision(data: Any) -> None:
    """The engine's check of a db-change token's completion (raises `DecisionInvalid`)."""
    Decision.from_json(data)


def db_change_task(targets: Targets) -> TaskFn:
    """The `db-change` task for an engine of this process, executing runs with *targets*."""

    @task(TASK_NAME, check_output=_check_decision, audit=True)
    async def db_change(ctx: RunContext, payload: Any) -> dict[str, Any]:
        """Propose a change for *payload*'s request, wait for a reviewer, then write it or not."""
        return await _execute(ctx, targets, payload)

    return db_change


async def _execute(ctx: RunContext, targets: Targets, payload: Any) -> dict[str, Any]:
    change = ChangeRequest.from_json(payload)
    # The profile is resolved before anything is opened: a run that names a profile this
    # machine lacks fails here, and no key and no data leave.
    profile = targets.profile(change.profile, change.target_id)
    target = await targets.open(profile)
    if change.reverts is not None:
        review = Review.from_json(
            await ctx.step(PROPOSE_STEP, _propose_revert, target, change, profile)
        )
        changed = await ctx.step(
            REVERT_CHECK_STEP, asyncio.to_thread, _changed_since, target, review.diffs
        )
        if changed:
            return _changed_outcome(change.reverts, changed).to_json()
    else:
        review = await _proposed(ctx, targets, target, change, profile)
    return await _decided(ctx, target, change, profile, review)


async def _proposed(
    ctx: RunContext,
    targets: Targets,
    target: Target,
    change: ChangeRequest,
    profile: TargetProfile,
) -> Review:
    proposer = make_proposer(profile, targets)
    session = ProposalSession(
        request=change.request,
        catalogue=target.catalogue,
        tools=ReadTools(target.catalogue, target.reader),
        recorder=ctx,
        max_rows=profile.max_rows,
    )
    proposal = await proposer.propose(session)
    review = Review.from_json(
        await ctx.step(
            PROPOSE_STEP,
            _propose,
            target,
            change,
            profile,
            proposer.label,
            proposal.to_wire(),
            session.reads,
        )
    )
    return review


async def _decided(
    ctx: RunContext, target: Target, change: ChangeRequest, profile: TargetProfile, review: Review
) -> dict[str, Any]:
    """Wait for the review's decision (or its rule's automatic approval), then apply or not."""
    rule = None if review.rule is None else Rule.from_json(review.rule)
    if rule is not None and rule.auto_approve:
        decision = Decision(approve=True, reviewer=f"policy rule '{rule.name}'")
    else:
        timeout = rule.timeout if rule is not None and rule.timeout else change.timeout
        token = await wait.create_token(
            timeout=timeout, tags=token_tags(review.tables), requirement=requirement(review)
        )
        result = await wait.for_token(token)
        if not result.ok:
            return Outcome(
                "expired", None, None, f"no decision within {timeout}; nothing was written"
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
        "apply", asyncio.to_thread, _apply, target, profile, review, decision, ctx.run_id
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


class EditRefused(AgentError):
    """An approval whose edits would not apply; the token was not completed, the run waits."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            "the edits are refused, nothing was decided: "
            + "; ".join(str(problem) for problem in problems)
        )
        self.problems = problems


async def decide(
    engine: Engine,
    targets: Targets,
    token_id: str,
    decision: Decision,
    *,
    seen: str | None = None,
) -> Token:
    """Record *decision* on a review's token; *seen* is the `Review.diff_hash` of the review
    the reviewer was shown (by default, the run's review as read now). Edits are checked
    against the target first: `EditRefused` when one would not apply, and the run still
    waits. The store checks the review's rule: the engine's `DecisionRefused` says why a
    decision may not be made, `TokenAlreadyFinished` that it was decided or timed out
    meanwhile (nothing changes then). The token is returned COMPLETED, or still WAITING for
    more approvals."""
    if seen is None or (decision.approve and decision.edits):
        token = await engine.get_token(token_id)
        if token.run_id is not None:
            if seen is None:
                review = review_from_steps(await engine.get_steps(token.run_id))
                seen = None if review is None else review.diff_hash
            if decision.approve and decision.edits:
                problems = await check_edits(engine, targets, token.run_id, decision.edits)
                if problems:
                    raise EditRefused(problems)
    return await engine.decide(token_id, decision.to_json(), seen=seen)


async def check_edits(
    engine: Engine, targets: Targets, run_id: str, edits: tuple[Edit, ...]
) -> list[Problem]:
    """What would be wrong with approving *run_id* with *edits*, checked against the target now;
    empty when the edits are fine. `decide` calls it before completing the token, so that a
    reviewer can correct an edit instead of ending the run as ``invalid_edit``."""
    run = await engine.get_run(run_id)
    review = review_from_steps(await engine.get_steps(run_id))
    if review is None:
        raise RequestInvalid(f"run {run_id} has no proposal to edit yet")
    change = ChangeRequest.from_json(run.payload)
    profile = targets.profile(change.profile, change.target_id)
    target = await targets.open(profile)
    return await check_decision_edits(
        review, edits, target.catalogue, target.reader, max_rows=profile.max_rows
    )
