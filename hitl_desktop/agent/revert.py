"""Reverting an applied `db-change` run: a new `db-change` run whose proposal undoes what it wrote.

    state = await revert_state(engine, run_id)      # can it be reverted? which runs revert it?
    new_run_id = await revert(engine, run_id)       # or RevertRefused saying why not

The new run's payload names the run it reverts and carries the rows that run's apply recorded
(`images.RowImage`); its proposal is their inverse (an insert is deleted by its key, an update
set back, a deleted row inserted again), reviewed under the same policy and applied with the
same exactly-once and conflict rules: a row changed since the reverted apply ends it `conflict`,
naming what changed, and nothing is written. The request is an audit-trail entry
(`REVERT_ENTRY`) about the reverted run, naming the new one, committed with it: that is how a
run's reverts are found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..engine import Engine, Run, RunStatus
from .db_change import ChangeRequest, RequestInvalid
from .errors import AgentError
from .images import NotRevertible, RowImage, images_from_json, inverse
from .review import TASK_NAME, Outcome, review_from_steps
from .targets import ProfileUnavailable, Targets

REVERT_ENTRY = "RevertRequested"
"""The audit entry of a revert request: about the reverted run, its data names the new run."""

_FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


class RevertRefused(AgentError):
    """A revert that may not be requested (the message says why); nothing was started."""


@dataclass(frozen=True, slots=True)
class RevertState:
    """What the console and `hitl show` say about reverting a run."""

    run_id: str
    revertible: bool
    reason: str | None
    """Why it cannot be reverted now (None when it can)."""
    reverts: str | None
    """The run this run reverts (a revert's), else None."""
    reverted_by: tuple[str, ...]
    """The runs requested to revert this one, oldest first."""
    reverted: str | None
    """The revert run that was applied, if one was."""


async def reverts_of(engine: Engine, run_id: str) -> tuple[str, ...]:
    """The runs requested to revert *run_id*, oldest first (from the audit trail)."""
    found: list[str] = []
    after = 0
    for _ in range(10_000):  # bounded: pages of 1,000 entries about one run
        page = await engine.audit_entries(after, run_id=run_id)
        if not page:
            break
        for entry in page:
            if entry.kind == REVERT_ENTRY and entry.data:
                found.append(str(json.loads(entry.data)["run"]))
        after = page[-1].id
    return tuple(found)


def _outcome(run: Run) -> Outcome | None:
    try:
        return Outcome.from_json(run.output)
    except (TypeError, KeyError, ValueError):
        return None


async def _state(engine: Engine, run: Run) -> tuple[RevertState, ChangeRequest | None]:
    reverted_by = await reverts_of(engine, run.id)
    reverts: str | None = None
    change: ChangeRequest | None = None
    reason: str | None = None
    reverted: str | None = None
    if run.task != TASK_NAME:
        reason = f"run {run.id} is a {run.task!r} run: only a {TASK_NAME} run can be reverted"
    else:
        try:
            change = ChangeRequest.from_json(run.payload)
            reverts = change.reverts
        except RequestInvalid as exc:
            reason = f"run {run.id} has a payload that cannot be read: {exc}"
    if reason is None:
        reason = _not_applied(run)
    if reason is None:
        for other_id in reverted_by:
            other = await engine.get_run(other_id)
            if other.status not in _FINISHED:
                reason = (
                    f"a revert of run {run.id} was already requested and is still {other.status}: "
                    f"run {other.id}"
                )
                break
            outcome = _outcome(other) if other.status == RunStatus.COMPLETED else None
            if outcome is not None and outcome.outcome == "applied":
                reverted = other.id
                reason = f"run {run.id} was already reverted by run {other.id}"
                break
    if reason is None:
        try:
            inverse(_written(run))
        except NotRevertible as exc:
            reason = f"run {run.id} cannot be reverted: {exc}"
    state = RevertState(run.id, reason is None, reason, reverts, reverted_by, reverted)
    return state, change


def _not_applied(run: Run) -> str | None:
    if run.status != RunStatus.COMPLETED:
        return f"run {run.id} is {run.status}: only an applied change can be reverted"
    outcome = _outcome(run)
    if outcome is None or outcome.outcome != "applied":
        ended = "without an outcome" if outcome is None else outcome.outcome
        return f"run {run.id} ended {ended}: nothing was written, there is nothing to revert"
    if outcome.written is None:
        return (
            f"run {run.id} did not record the rows it wrote (applied by an earlier version, or "
            "recovered after a crash with an older marker table): it cannot be reverted"
        )
    return None


def _written(run: Run) -> tuple[RowImage, ...]:
    outcome = _outcome(run)
    assert outcome is not None and outcome.written is not None
    return images_from_json(outcome.written)


async def revert_state(engine: Engine, run_id: str) -> RevertState:
    """Whether *run_id* can be reverted now (and why not), and how it links to other runs."""
    state, _ = await _state(engine, await engine.get_run(run_id))
    return state


async def revert(
    engine: Engine,
    run_id: str,
    *,
    profile: str | None = None,
    targets: Targets | None = None,
    timeout: str | None = None,
) -> str:
    """Request the revert of the applied run *run_id*; return the new run's id.

    *profile*, when given, must be the profile the run wrote through; *targets* (this machine's)
    must still point that profile at the database it wrote to. `RevertRefused` says why not
    otherwise, when the run is not applied, was reverted already, or a revert of it waits."""
    run = await engine.get_run(run_id)
    state, change = await _state(engine, run)
    if not state.revertible or change is None:
        raise RevertRefused(state.reason or f"run {run_id} cannot be reverted")
    if profile is not None and profile != change.profile:
        raise RevertRefused(
            f"run {run_id} wrote through the target profile {change.profile!r}: its revert goes "
            f"through the same profile, not {profile!r}"
        )
    if targets is not None:
        try:
            targets.profile(change.profile, change.target_id)
        except ProfileUnavailable as exc:
            raise RevertRefused(f"run {run_id} cannot be reverted here: {exc}") from None
    review = review_from_steps(await engine.get_steps(run_id))
    what = change.request if review is None else review.summary
    request = f"Revert run {run_id}: {what}"
    payload = ChangeRequest(
        request[:4000],
        change.profile,
        timeout or change.timeout,
        change.target_id,
        reverts=run_id,
        written=_written(run),
    ).to_json()
    # One key per attempt: two requests at once share it, and the second is refused below.
    key = f"revert:{run_id}:{len(state.reverted_by) + 1}"
    new = await engine.trigger(
        TASK_NAME,
        ChangeRequest.from_json(payload).to_json(),
        idempotency_key=key,
        tags=[TASK_NAME],
        audit=(REVERT_ENTRY, run_id),
    )
    if new.is_cached:
        raise RevertRefused(
            f"a revert of run {run_id} was already requested at the same time: run {new.id}"
        )
    return new.id
