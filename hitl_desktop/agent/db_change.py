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

A request whose proposal falls into independent parts is a change set (`change_set`): a token per
part, one wait for all of them, and the approved parts written together (``apply="all"``, in one
transaction, only when every part is approved) or each on its own (``apply="each"``).

A revert's payload also names the run it reverts and carries the rows that run wrote
(`images.RowImage`): its proposal is their inverse, not a proposer's, and its diffs start from the
rows as that apply left them, so a row changed since is a conflict (see `revert`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..engine import (
    Engine,
    Requirement,
    Run,
    RunContext,
    TaskFn,
    Token,
    TokenResult,
    TokenStatus,
    task,
    wait,
)
from ..units.defaults import DEFAULT_TOKEN_TIMEOUT, OFFLINE
from ..units.durations import text_seconds
from ..units.urls import redact_url
from .apply import apply_proposal, outcome_of, with_edits
from .change_set import (
    APPLY_PART,
    offsets,
    part_outcomes,
    part_review,
    rule_of,
    set_edits,
    set_review,
    split,
)
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
from .review import (
    APPLY_MODES,
    PROPOSE_STEP,
    TASK_NAME,
    ApplyMode,
    Decision,
    Edit,
    Outcome,
    Part,
    Review,
    review_from_steps,
)
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
    apply: ApplyMode = "all"
    """How a change set's approved parts are written: "all" together once every part is
    approved, or "each" on its own as soon as it is approved (see `change_set`)."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "request": self.request,
            "profile": self.profile,
            "timeout": self.timeout,
        }
        if self.apply != "all":  # the default's payload is what it always was
            data["apply"] = self.apply
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
        apply = data.get("apply", "all")
        if apply not in APPLY_MODES:
            raise RequestInvalid(
                f"apply must be 'all' (a change set is written together, once every part is "
                f"approved) or 'each' (each part on its own), not {apply!r}"
            )
        return cls(request.strip(), profile, timeout, target_id, reverts, images, apply)


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
    part_reads: dict[str, tuple[Read, ...]] | None = None,
) -> Any:
    proposal = Proposal.model_validate(wire)
    validated = validate(proposal, target.catalogue, target.reader, max_rows=profile.max_rows)
    parts = split(proposal)
    if parts:
        return _set_review(target, change, profile, label, proposal, parts, part_reads or {})
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


def _set_review(
    target: Target,
    change: ChangeRequest,
    profile: TargetProfile,
    label: str,
    proposal: Proposal,
    parts: tuple[tuple[str, Proposal], ...],
    part_reads: dict[str, tuple[Read, ...]],
) -> Any:
    """A change set's review: each part validated, diffed and given its read set on its own
    (a part that is valid only with another is not independent: the proposal is refused)."""
    reviews = []
    for name, part in parts:
        try:
            validated = validate(part, target.catalogue, target.reader, max_rows=profile.max_rows)
        except ProposalInvalid as exc:
            raise ProposalInvalid(
                [
                    Problem(
                        None,
                        None,
                        None,
                        "bad_shape",
                        f"part {name!r} of the change set is not valid on its own ({problem}): "
                        "a change set's parts must be independent",
                    )
                    for problem in exc.problems
                ]
            ) from None
        reads = unique_reads([*part_reads.get(name, ()), *parent_reads(validated, target.reader)])
        review = Review(
            request=change.request,
            summary=name,
            rationale=proposal.rationale,
            proposal=part.to_wire(),
            diffs=tuple(diff_proposal(validated, target.reader)),
            tables=part.tables,
            target=redact_url(profile.target_url),
            proposer=label,
            reads=reads,
        )
        reviews.append(Part(name, review))
    return set_review(
        change.request,
        proposal,
        reviews,
        target=redact_url(profile.target_url),
        proposer=label,
        apply=change.apply,
    ).to_json()


async def _propose(
    target: Target,
    change: ChangeRequest,
    profile: TargetProfile,
    label: str,
    wire: dict[str, Any],
    reads: tuple[Read, ...],
    part_reads: dict[str, tuple[Read, ...]] | None = None,
) -> Any:
    """The review, with the approval policy's rule that matches it (each part's, for a change
    set). The policy is read here, inside the step, so that a replay sees the rule the first
    execution matched. A policy that cannot be read fails the run: it never falls back to no
    policy."""
    record = await wait.current_policy()
    data = await asyncio.to_thread(_review, target, change, profile, label, wire, reads, part_reads)
    return _with_rule(data, record, profile)


def _with_rule(data: dict[str, Any], record: Any, profile: TargetProfile) -> dict[str, Any]:
    """*data* (a review) with the rule of the policy *record* that matches it, if any; a change
    set's parts each with the rule that matches the part."""
    if record is not None:
        try:
            policy = parse_policy(record.text)
        except PolicyInvalid as exc:
            raise PolicyInvalid(
                f"the approval policy in force (version {record.version}) cannot be read: {exc}"
            ) from exc
        for reviewed in [part["review"] for part in data.get("parts") or ()] or [data]:
            rule = policy.match(profile.name, Review.from_json(reviewed).diffs)
            if rule is not None:
                reviewed["rule"] = {**rule.to_json(), "policy_version": record.version}
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
    step: str = "apply",
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
            step=step,
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
    if review.parts:
        return await _decided_set(ctx, target, change, profile, review)
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
    part_reads = {name: session.reads_of(name) for name in proposal.parts}
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
            part_reads if len(part_reads) > 1 else None,
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


async def _decided_set(
    ctx: RunContext, target: Target, change: ChangeRequest, profile: TargetProfile, review: Review
) -> dict[str, Any]:
    """A change set: a token per part (none for a part its rule approves), each under its own
    part's rule and tagged with its tables; then all parts written together or each alone."""
    count = len(review.parts)
    decisions: list[Decision | None] = [None] * count
    tokens: list[str | None] = [None] * count
    timeouts = [change.timeout] * count
    for i, part in enumerate(review.parts):
        rule = rule_of(part.review)
        if rule is not None and rule.auto_approve:
            decisions[i] = Decision(approve=True, reviewer=f"policy rule '{rule.name}'")
            continue
        if rule is not None and rule.timeout:
            timeouts[i] = rule.timeout
        token = await wait.create_token(
            timeout=timeouts[i],
            tags=token_tags(part.review.tables),
            requirement=requirement(part.review),
        )
        tokens[i] = token.id
    # The wait's own deadline is the latest of its tokens' (it starts later): every token times
    # out on its own before it, so the wait always ends by a token finishing.
    limit = max((text_seconds(timeouts[i]) for i, t in enumerate(tokens) if t), default=1.0)
    waits = _SetWait(review, decisions, tokens, timeouts, limit)
    if review.apply == "each":
        return await _each(ctx, target, profile, waits)
    return await _all(ctx, target, profile, waits)


@dataclass(slots=True)
class _SetWait:
    """A change set's parts while the run waits: each part's decision (None: none yet, or
    expired), token (None: approved by its rule) and timeout."""

    review: Review
    decisions: list[Decision | None]
    tokens: list[str | None]
    timeouts: list[str]
    limit: float

    def token(self, i: int) -> str:
        token = self.tokens[i]
        assert token is not None, f"part {i + 1} is approved by its rule: it has no token"
        return token

    def label(self, i: int) -> str:
        return f"part {i + 1} of {len(self.review.parts)} ({self.review.parts[i].name!r})"

    def decide(self, i: int, result: TokenResult) -> None:
        if result.ok:
            self.decisions[i] = Decision.from_json(result.output)

    def not_written(self, i: int) -> Outcome:
        """Part *i*'s outcome when it was rejected or not decided in time."""
        decision = self.decisions[i]
        if decision is None:
            return Outcome(
                "expired", None, None, f"no decision within {self.timeouts[i]}; nothing was written"
            )
        reason = f": {decision.comment}" if decision.comment else ""
        return Outcome(
            "rejected",
            decision.reviewer,
            decision.comment,
            f"rejected by {decision.reviewer}{reason}; nothing was written",
        )


async def _all(
    ctx: RunContext, target: Target, profile: TargetProfile, waits: _SetWait
) -> dict[str, Any]:
    """All or nothing: one wait for every part's token (`wait.for_all`: the run suspends once;
    a rejection does not end it early, so that no part's review is left open on a finished
    run), then one transaction for every part, or none."""
    review, decisions = waits.review, waits.decisions
    open_parts = [i for i, token in enumerate(waits.tokens) if token is not None]
    if open_parts:
        got = await wait.for_all([waits.token(i) for i in open_parts], timeout=waits.limit)
        for i, result in zip(open_parts, got.results, strict=True):
            waits.decide(i, result)
    refused = [i for i, d in enumerate(decisions) if d is None or not d.approve]
    if refused:
        return _set_refused(waits, refused).to_json()
    approved = [d for d in decisions if d is not None]
    reviewers = ", ".join(dict.fromkeys(d.reviewer for d in approved))
    comments = "; ".join(d.comment for d in approved if d.comment) or None
    decision = Decision(True, reviewers, comments, set_edits(review, decisions))
    written = Outcome.from_json(
        await ctx.step(
            "apply", asyncio.to_thread, _apply, target, profile, review, decision, ctx.run_id
        )
    )
    outcomes = []
    for part, d in zip(review.parts, approved, strict=True):
        if written.outcome == "applied":
            rows = len(part.review.diffs)
            message = f"applied with the change set: {rows} row change(s), approved by {d.reviewer}"
            outcomes.append(Outcome("applied", d.reviewer, d.comment, message, rows=rows))
        else:
            outcomes.append(Outcome(written.outcome, d.reviewer, d.comment, written.message))
    if written.outcome == "applied":
        written = replace(
            written,
            message=f"applied the change set's {len(approved)} parts together ({written.rows} "
            f"row change(s)) after approval by {reviewers}",
        )
    return replace(written, parts=part_outcomes(review, outcomes, waits.tokens)).to_json()


def _refusal(waits: _SetWait, i: int) -> str:
    decision = waits.decisions[i]
    if decision is None:
        return f"{waits.label(i)} had no decision within {waits.timeouts[i]}"
    reason = f" ({decision.comment})" if decision.comment else ""
    return f"{waits.label(i)} was rejected by {decision.reviewer}{reason}"


def _set_refused(waits: _SetWait, refused: list[int]) -> Outcome:
    """The set's outcome when parts *refused* were rejected or not decided: nothing written."""
    decisions = waits.decisions
    why = "; ".join(_refusal(waits, i) for i in refused)
    rejecters = [d for i in refused if (d := decisions[i]) is not None]
    outcomes = []
    for i in range(len(waits.review.parts)):
        decision = decisions[i]
        if i in refused or decision is None:
            outcomes.append(waits.not_written(i))
        else:
            outcomes.append(
                Outcome(
                    "rejected" if rejecters else "expired",
                    decision.reviewer,
                    decision.comment,
                    f"approved by {decision.reviewer}, not written: {why}",
                )
            )
    first = rejecters[0] if rejecters else None
    return Outcome(
        "rejected" if first else "expired",
        None if first is None else first.reviewer,
        None if first is None else first.comment,
        f"{why}; nothing of the change set was written",
        parts=part_outcomes(waits.review, outcomes, waits.tokens),
    )


async def _each(
    ctx: RunContext, target: Target, profile: TargetProfile, waits: _SetWait
) -> dict[str, Any]:
    """Each part on its own: a part its rule approves is written first; then `wait.for_any` on
    the parts still open, again and again, writing each approved part (its own transaction,
    step and marker) as soon as its decision arrives, not after the slowest reviewer's."""
    review = waits.review
    ended: dict[int, Outcome] = {}
    order: list[int] = []

    async def settle(i: int) -> None:
        decision = waits.decisions[i]
        if decision is None or not decision.approve:
            ended[i] = waits.not_written(i)
            return
        step = APPLY_PART.format(number=i + 1)
        part = review.parts[i].review
        ended[i] = Outcome.from_json(
            await ctx.step(
                step, asyncio.to_thread, _apply, target, profile, part, decision, ctx.run_id, step
            )
        )
        order.append(i)

    for i, token in enumerate(waits.tokens):
        if token is None:
            await settle(i)
    open_parts = [i for i, token in enumerate(waits.tokens) if token is not None]
    for _ in range(len(open_parts)):  # bounded: each wait ends with one more part finished
        if not open_parts:
            break
        got = await wait.for_any([waits.token(i) for i in open_parts], timeout=waits.limit)
        finished = [
            (i, result)
            for i, result in zip(open_parts, got.results, strict=True)
            if result.status != TokenStatus.WAITING
        ]
        if not finished:  # the wait's own deadline came first (see `limit`): none is written
            break
        for i, result in finished:
            open_parts.remove(i)
            waits.decide(i, result)
            await settle(i)
    for i in open_parts:
        ended[i] = waits.not_written(i)
    return _each_outcome(waits, [ended[i] for i in range(len(review.parts))], order).to_json()


def _each_outcome(waits: _SetWait, outcomes: list[Outcome], order: list[int]) -> Outcome:
    review = waits.review
    told = "; ".join(f"{waits.label(i)}: {o.message}" for i, o in enumerate(outcomes))
    applied = [i for i in order if outcomes[i].outcome == "applied"]
    conflicts = tuple(c for o in outcomes for c in o.conflicts)
    problems = tuple(p for o in outcomes for p in o.problems)
    parts = part_outcomes(review, [replace(o, written=None) for o in outcomes], waits.tokens)
    if not applied:
        kinds = [o.outcome for o in outcomes]
        kind = "rejected" if "rejected" in kinds else kinds[0]
        first = next(o for o in outcomes if o.outcome == kind)
        return Outcome(
            kind,
            first.reviewer,
            first.comment,
            f"no part was written: {told}",
            conflicts=conflicts,
            problems=problems,
            parts=parts,
        )
    # What a revert undoes: the rows of every written part, in the order they were written,
    # numbered as the set's changes.
    at = offsets(review.parts)
    written: list[dict[str, Any]] | None = []
    for i in applied:
        images = outcomes[i].written
        if images is None or written is None:
            written = None
            continue
        written += [{**image, "index": at[i] + image["index"]} for image in images]
    rows = sum(outcomes[i].rows for i in applied)
    return Outcome(
        "applied",
        ", ".join(dict.fromkeys(str(outcomes[i].reviewer) for i in applied)),
        None,
        f"applied {len(applied)} of {len(outcomes)} parts, each on its own ({rows} row "
        f"change(s)): {told}",
        rows=rows,
        conflicts=conflicts,
        problems=problems,
        written=None if written is None else tuple(written),
        parts=parts,
    )


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
    more approvals.

    A part of a change set is decided on its own token: *seen* is then that part's diff hash,
    and edits number that part's changes."""
    if seen is None or (decision.approve and decision.edits):
        token = await engine.get_token(token_id)
        if token.run_id is not None:
            if seen is None:
                review = part_review(await engine.get_steps(token.run_id), token_id)
                seen = None if review is None else review.diff_hash
            if decision.approve and decision.edits:
                problems = await check_edits(
                    engine, targets, token.run_id, decision.edits, token_id=token_id
                )
                if problems:
                    raise EditRefused(problems)
    return await engine.decide(token_id, decision.to_json(), seen=seen)


async def check_edits(
    engine: Engine,
    targets: Targets,
    run_id: str,
    edits: tuple[Edit, ...],
    *,
    token_id: str | None = None,
) -> list[Problem]:
    """What would be wrong with approving *run_id* (the part of its change set decided on
    *token_id*) with *edits*, checked against the target now; empty when the edits are fine.
    `decide` calls it before completing the token, so that a reviewer can correct an edit
    instead of ending the run as ``invalid_edit``."""
    run = await engine.get_run(run_id)
    steps = await engine.get_steps(run_id)
    review = review_from_steps(steps) if token_id is None else part_review(steps, token_id)
    if review is None:
        raise RequestInvalid(f"run {run_id} has no proposal to edit yet")
    change = ChangeRequest.from_json(run.payload)
    profile = targets.profile(change.profile, change.target_id)
    target = await targets.open(profile)
    return await check_decision_edits(
        review, edits, target.catalogue, target.reader, max_rows=profile.max_rows
    )
