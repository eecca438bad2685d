"""The engine's public records: runs, tokens, steps, token results and group results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from .errors import TokenTimeoutError


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


class TokenStatus(StrEnum):
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"


RUN_STATUSES: dict[str, RunStatus] = {s.value: s for s in RunStatus}
TOKEN_STATUSES: dict[str, TokenStatus] = {s.value: s for s in TokenStatus}
"""Status text → member: a dict lookup, far cheaper than calling the enum for every row read."""


def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


R = TypeVar("R", bound=type)


def quick_init(cls: R) -> R:
    """Give a frozen, slotted dataclass an __init__ that sets each field through its slot's
    own setter. The generated one calls object.__setattr__ with each name, which looks the
    slot up again every time, and the engine makes several records per run execution. Same
    signature and defaults; still frozen."""
    params, lines = [], []
    names: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)
        names[f"_set_{f.name}"] = slot.__set__
        if f.default is not dataclasses.MISSING:
            names[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        else:
            assert f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}"
            params.append(f.name)
        lines.append(f"    _set_{f.name}(self, {f.name})")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines), names)
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls


@quick_init
@dataclass(frozen=True, slots=True)
class Run:
    id: str
    task: str
    status: RunStatus
    payload: Any
    output: Any
    error: str | None
    traceback: str | None
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    waiting_token_id: str | None
    idempotency_key: str | None
    is_cached: bool = False
    """True when trigger() returned an existing run for its idempotency key."""
    created_by: str | None = None
    """Who triggered it, as the store was told by its server: the database role on
    PostgreSQL, the OS account on SQLite."""


@quick_init
@dataclass(frozen=True, slots=True)
class Token:
    id: str
    run_id: str | None
    status: TokenStatus
    tags: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    output: Any
    idempotency_key: str | None
    is_cached: bool = False
    """True when create_token() returned an existing token for its idempotency key."""
    completed_by: str | None = None
    """Who completed it, as the store was told by its server: the database role on
    PostgreSQL, the OS account on SQLite."""
    requirement: Requirement | None = None
    """Who may decide it and how many must approve (a review's token); read by get_token."""
    verdicts: tuple[Verdict, ...] = ()
    """The decisions recorded on it so far, oldest first; read by get_token."""


@quick_init
@dataclass(frozen=True, slots=True)
class Step:
    """One recorded operation of a run: a step, a token creation, or a wait."""

    run_id: str
    position: int
    kind: str
    name: str
    ok: bool
    result: Any
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@quick_init
@dataclass(frozen=True, slots=True)
class TokenResult:
    """What `wait.for_token` returns: the completion's output, or ok=False on timeout."""

    token_id: str
    ok: bool
    output: Any = None
    error: str | None = field(default=None)
    status: TokenStatus | None = field(default=None, repr=False)
    """COMPLETED or TIMED_OUT; WAITING for a member of wait.for_any / for_all still open
    when the wait ended. Set by the engine (None on results made by hand)."""

    def unwrap(self) -> Any:
        if not self.ok:
            raise TokenTimeoutError(self.token_id)
        return self.output


@dataclass(frozen=True, slots=True)
class GroupResult:
    """What `wait.for_any` and `wait.for_all` return: each token's result in the order given
    (completed with its output, timed out, or still waiting), as the group stood when the
    wait ended."""

    results: tuple[TokenResult, ...]
    timed_out: bool
    """True when the group's own deadline ended the wait."""
    first: TokenResult | None = None
    """The token that finished first (completed or timed out): the one that ended a
    for_any's wait; None when none had finished."""

    @property
    def outputs(self) -> list[Any]:
        """The outputs of the completed tokens, in the order given."""
        return [r.output for r in self.results if r.ok]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of the store's audit trail (see Engine.audit_entries)."""

    id: int
    at: str
    """ISO 8601 UTC, from the store's server clock (this machine's clock on SQLite)."""
    actor: str
    """Who made the change, told by the store's server (the OS account on SQLite)."""
    kind: str
    run_id: str | None
    token_id: str | None
    data: str | None
    """JSON text, as recorded: the completion's output, the run's output or error."""
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditBreak:
    """Where an audit trail stops matching its hashes."""

    entry_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What walking a whole audit trail found (Engine.verify_audit)."""

    entries: int
    """Entries checked: up to the first break, or all of them."""
    head: str
    """The hash of the last entry checked (the chain's head when intact)."""
    broken: AuditBreak | None
    """The first entry that does not match, or None: the chain is intact."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """What deciding a review's token takes, fixed when the token is created: the store checks
    it in the transaction that records each decision (Engine.decide). Its *rule* names the
    policy rule it came from (None: no rule, one approval by anyone)."""

    rule: str | None = None
    approvals: int = 1
    """Distinct reviewers who must approve; any rejection rejects."""
    approvers: tuple[str, ...] = ()
    """Who may decide: database roles (or roles they are members of) on PostgreSQL, OS
    accounts on SQLite. Empty: anyone who can reach the store."""
    self_approval: bool = True
    """False: whoever triggered the run may not approve it (they may reject it)."""
    remind_after: float | None = None
    """Seconds after which the review is overdue (reminders), and *escalate_to* may decide."""
    escalate_to: tuple[str, ...] = ()
    seen: str | None = None
    """The hash of what reviewers are shown: a decision naming another hash is refused."""
    requester: str | None = None
    """Who triggered the run, as the store recorded it (filled in by the store)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "approvals": self.approvals,
            "approvers": list(self.approvers),
            "self_approval": self.self_approval,
            "remind_after": self.remind_after,
            "escalate_to": list(self.escalate_to),
            "seen": self.seen,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], requester: str | None = None) -> Requirement:
        return cls(
            rule=data.get("rule"),
            approvals=int(data.get("approvals", 1)),
            approvers=tuple(data.get("approvers") or ()),
            self_approval=bool(data.get("self_approval", True)),
            remind_after=data.get("remind_after"),
            escalate_to=tuple(data.get("escalate_to") or ()),
            seen=data.get("seen"),
            requester=requester,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """One reviewer's recorded decision on a review's token."""

    reviewer: str
    """Who decided, as the store was told by its server (database role / OS account)."""
    approve: bool
    at: datetime
    output: Any
    """The decision as sent (comment, edits, display name)."""
    seen: str | None


@dataclass(frozen=True, slots=True)
class Overdue:
    """A review that has waited longer than its requirement's remind_after."""

    token_id: str
    run_id: str | None
    rule: str | None
    waiting_since: datetime
    escalate_to: tuple[str, ...]
    approvals: int
    """Approvals recorded so far."""
    needed: int


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A version of the store's approval policy (Engine.apply_policy): its text as applied."""

    version: int
    text: str
    """The policy file's text; empty: no policy."""
    sha256: str
    applied_at: datetime
    applied_by: str
    """Who applied it, as the store was told by its server."""
