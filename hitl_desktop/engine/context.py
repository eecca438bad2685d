"""A run's execution context: steps, tokens and waits, recorded the first time and replayed after.

Every durable operation of a run takes the next position in its history. The first execution
records what each operation returned; a later execution (after a wait or a crash) returns the
recorded value at each position without running anything, and goes on live past the end of the
history. A position whose recorded operation differs from the one the code now makes fails the
run (`ReplayMismatch`): replaying into different code could repeat or skip side effects.

Records are written with the run's next commit. Before a step's function runs, everything
recorded so far is committed, so a crash can only repeat the step that was running.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import serde
from .errors import NotInRun, ReplayMismatch, StepFailed
from .models import (
    TOKEN_STATUSES,
    GroupResult,
    PolicyRecord,
    Requirement,
    Token,
    TokenResult,
    TokenStatus,
    to_datetime,
)
from .store import groups
from .store.records import Paused, Recorded, Resume, StepWrite, TokenState, TokenWrite, Writes

if TYPE_CHECKING:
    from .runner import Runner

current: ContextVar[RunContext] = ContextVar("hitl_run")

_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
"""What most step functions return: not awaitable, no need to ask the Awaitable ABC."""

MAX_TAGS = 10
MAX_TAG_LENGTH = 128


class Suspend(BaseException):
    """Unwinds a run's coroutine when it waits; a BaseException so `except Exception` misses it."""


class RunContext:
    """Passed to a task as `ctx`; also reached by `wait.*` through a context variable."""

    def __init__(self, runner: Runner, resume: Resume) -> None:
        self.run_id = resume.run_id
        self.task = resume.task
        self._runner = runner
        host = runner.host
        self._db = host.db
        self._engine_id = host.id
        self._clock = host.clock
        self._max_bytes = host.max_payload_bytes
        self._default_timeout = host.default_token_timeout
        self._payload = resume.payload
        self._history: dict[int, Recorded] = resume.steps
        self._tokens: dict[str, TokenState] = resume.tokens
        self._position = 0
        self._writes = Writes()
        self._recorded: list[StepWrite] = []  # everything this execution recorded, in order
        self._must_flush = False  # set by records whose loss would repeat a side effect
        self.diverged: ReplayMismatch | None = None

    # ------------------------------------------------------------ history

    def _next(self, kind: str, name: str) -> tuple[int, Recorded | None]:
        if self.diverged is not None:
            raise self.diverged
        position = self._position
        self._position += 1
        recorded = self._history.get(position)
        if recorded is not None and (recorded.kind != kind or recorded.name != name):
            self.diverged = ReplayMismatch(
                position, f"{recorded.kind} {recorded.name!r}", f"{kind} {name!r}"
            )
            raise self.diverged
        return position, recorded

    def _record(self, write: StepWrite, durable_before_next_step: bool = True) -> None:
        self._writes.steps.append(write)
        self._recorded.append(write)
        self._must_flush = self._must_flush or durable_before_next_step

    async def flush(self) -> None:
        """Commit what has been recorded so far."""
        if self._writes:
            writes = self.take_writes()
            await self._db.flush(self.run_id, self._engine_id, writes, self._clock())
            self._runner.note_tokens(writes)

    def take_writes(self) -> Writes:
        self._must_flush = False
        return self._writes.take()

    # ------------------------------------------------------------ steps

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> Any:
        """Run `fn(*args)` once for this run and record its JSON result.

        On replay the recorded result is returned without calling *fn*. A step that raises is
        retried *retries* times with exponential backoff (*backoff* seconds, doubling); then it
        raises `StepFailed`, and replays raise the same error. Steps are at-least-once: a crash
        while *fn* runs runs it again.
        """
        position, recorded = self._next("step", name)
        if recorded is not None:
            if recorded.ok:
                return serde.load(recorded.result)
            error_type, _, message = (recorded.error or "").partition(": ")
            raise StepFailed(name, error_type, message, attempts=0)
        if self._must_flush:
            await self.flush()
        clock = self._clock
        started = clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                value = fn(*args)
                if type(value) not in _PLAIN and inspect.isawaitable(value):
                    value = await value
                break
            except Exception as exc:
                if attempt > retries:
                    error = f"{type(exc).__name__}: {exc}"
                    self._record(
                        StepWrite(
                            position, "step", name, False, None, error, attempt, started, clock()
                        )
                    )
                    raise StepFailed(name, type(exc).__name__, str(exc), attempt) from exc
                await asyncio.sleep(min(backoff * 2 ** (attempt - 1), max_backoff))
        text = serde.dump(value, f"the result of step {name!r}", self._max_bytes)
        self._record(StepWrite(position, "step", name, True, text, None, attempt, started, clock()))
        # What a replay will return, so first run and replay see the same value.
        return serde.load(text)

    # ------------------------------------------------------------ tokens

    async def create_token(
        self,
        timeout: str | float | timedelta | None = None,
        tags: list[str] | tuple[str, ...] | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: str | float | timedelta | None = None,
        requirement: Requirement | None = None,
    ) -> Token:
        position, recorded = self._next("token", "create_token")
        if recorded is not None:
            info = serde.load(recorded.result or "{}")
            state = self._tokens.get(info["id"])
            return _recorded_token(info, state.status if state else TokenStatus.WAITING)
        seconds = self._default_timeout if timeout is None else serde.seconds(timeout)
        tag_list = _check_tags(tags)
        now = self._clock()
        token = TokenWrite(serde.new_id("tok"), self.run_id, tag_list, now, now + seconds)
        token.requirement = _check_requirement(requirement)
        cached = False
        if idempotency_key is not None:
            token.idempotency_key = str(idempotency_key)
            if idempotency_key_ttl is not None:
                token.idempotency_expires_at = now + serde.seconds(idempotency_key_ttl)
            existing = await self._db.create_keyed_token(
                self.run_id, self._engine_id, self.take_writes(), token, now
            )
            if existing is not None:
                cached = True
                token = existing
                # Its outcome is read at the wait, from the store (outputs may be out of line).
                self._tokens.pop(token.id, None)
            else:
                self._runner.note_deadline(token.expires_at)
        else:
            self._writes.tokens.append(token)
            self._must_flush = True
        info = {
            "id": token.id,
            "tags": token.tags,
            "created_at": token.created_at,
            "expires_at": token.expires_at,
            "idempotency_key": token.idempotency_key,
        }
        self._record(
            StepWrite(
                position, "token", "create_token", True, serde.encode(info), None, 1, now, now
            )
        )
        state = self._tokens.get(token.id)
        return _recorded_token(info, state.status if state else TokenStatus.WAITING, cached)

    async def current_policy(self) -> PolicyRecord | None:
        return await self._db.current_policy()

    async def for_token(self, token: Token | str) -> TokenResult:
        token_id = token.id if isinstance(token, Token) else str(token)
        return _result(token_id, await self._wait(token_id))

    async def for_group(
        self,
        mode: str,
        tokens: Sequence[Token | str],
        timeout: str | float | timedelta | None = None,
    ) -> GroupResult:
        """wait.for_any (*mode* "any") and wait.for_all ("all"): one group token, created as a
        recorded operation, and one wait on it (see store/groups.py)."""
        name = f"for_{mode}"
        members = _check_members(name, tokens)
        position, recorded = self._next("token", name)
        if recorded is not None:
            info = serde.load(recorded.result or "{}")
            if info.get("members") != members:
                self.diverged = ReplayMismatch(
                    position, f"token {name!r} of {info.get('members')}", f"{name} of {members}"
                )
                raise self.diverged
            group_id = str(info["id"])
        else:
            seconds = self._default_timeout if timeout is None else serde.seconds(timeout)
            now = self._clock()
            group_id = serde.new_id(groups.PREFIX.rstrip("_"))
            token = TokenWrite(group_id, self.run_id, [], now, now + seconds)
            token.group = (mode, tuple(members))
            self._writes.tokens.append(token)
            self._must_flush = True
            info = {
                "id": group_id,
                "members": members,
                "created_at": now,
                "expires_at": now + seconds,
            }
            self._record(
                StepWrite(position, "token", name, True, serde.encode(info), None, 1, now, now)
            )
        state = await self._wait(group_id)
        return await self._group_result(group_id, state)

    async def _group_result(self, group_id: str, state: TokenState) -> GroupResult:
        snapshot = serde.load(state.output)
        members = snapshot["members"]
        # A member finished in the snapshot has that state for good (a finished token never
        # changes): its output is read from the token, once, if this history lacks it.
        missing = [
            m["token_id"]
            for m in members
            if m["status"] != TokenStatus.WAITING
            and self._tokens.get(m["token_id"], _OPEN).status == TokenStatus.WAITING
        ]
        if missing:
            self._tokens.update(await self._db.token_states(missing))
        results = []
        for m in members:
            token_id = m["token_id"]
            if m["status"] == TokenStatus.WAITING:
                error = f"token {token_id} was still waiting when the wait ended"
                results.append(TokenResult(token_id, False, None, error, TokenStatus.WAITING))
            else:
                results.append(_result(token_id, self._tokens[token_id]))
        finished = [
            (m["completed_at"], i) for i, m in enumerate(members) if m["completed_at"] is not None
        ]
        first = None if not finished else results[min(finished)[1]]
        return GroupResult(tuple(results), bool(snapshot["timed_out"]), first)

    async def _wait(self, token_id: str) -> TokenState:
        position, recorded = self._next("wait", token_id)
        state = self._tokens.get(token_id)
        if recorded is not None and state is not None:
            return state
        if state is None or state.status == TokenStatus.WAITING:
            writes = self.take_writes()
            paused = await self._db.pause(
                self.run_id,
                self._engine_id,
                writes,
                token_id,
                self._clock(),
                then=lambda out: self._paused(token_id, writes, out),
            )
            if paused.finished is None:
                raise Suspend()
            state = self._tokens[token_id] = paused.finished
        now = self._clock()
        # The token row holds the outcome durably; this record only keeps positions aligned,
        # so it need not be committed before the next step.
        ok = state.status == TokenStatus.COMPLETED
        self._record(StepWrite(position, "wait", token_id, ok, None, None, 1, now, now), False)
        return state

    def _paused(self, token_id: str, writes: Writes, out: Paused) -> None:
        """After the pause's commit (or the finding that the token had finished already)."""
        self._runner.committed(writes, out)
        # A group's history is not kept: nobody completes a group, so none would take it.
        if out.finished is None and not groups.is_group(token_id):
            self._runner.remember(token_id, self.history())

    def history(self) -> Resume:
        """What the store holds for this run now that every record is committed: the history it
        started from and what this execution recorded. Token states only where final: a
        waiting token is looked up again when the replay reaches it."""
        steps = dict(self._history)
        for w in self._recorded:
            steps[w.position] = Recorded(w.kind, w.name, w.ok, w.result, w.error)
        tokens = {k: v for k, v in self._tokens.items() if v.status != TokenStatus.WAITING}
        return Resume(self.run_id, self.task, self._payload, steps, tokens)


def _check_members(name: str, tokens: Sequence[Token | str]) -> list[str]:
    if isinstance(tokens, str | Token) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name} takes a list of tokens (or token ids), not {tokens!r}")
    ids = []
    for i, token in enumerate(tokens):
        if isinstance(token, Token):
            ids.append(token.id)
        elif isinstance(token, str) and token:
            ids.append(token)
        else:
            raise TypeError(
                f"{name}: item {i} is {token!r}, not a token or a token id (a non-empty string)"
            )
    if not ids:
        raise ValueError(f"{name} needs at least one token, got an empty list")
    if len(ids) > groups.MAX_MEMBERS:
        raise ValueError(f"{name} takes at most {groups.MAX_MEMBERS} tokens, got {len(ids)}")
    seen: set[str] = set()
    for token_id in ids:
        if token_id in seen:
            raise ValueError(f"{name}: token {token_id} is listed twice")
        if groups.is_group(token_id):
            raise ValueError(f"{name}: {token_id} is itself a wait for any / all, not a token")
        seen.add(token_id)
    return ids


def _check_tags(tags: list[str] | tuple[str, ...] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError(f"tags must be a list of non-empty strings, got {tags!r}")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"a token takes at most {MAX_TAGS} tags, got {len(tags)}")
    long = [t for t in tags if len(t) > MAX_TAG_LENGTH]
    if long:
        raise ValueError(f"tag {long[0][:40]!r}… is longer than {MAX_TAG_LENGTH} characters")
    return list(dict.fromkeys(tags))


def _recorded_token(info: dict[str, Any], status: str, cached: bool = False) -> Token:
    created = to_datetime(info["created_at"])
    expires = to_datetime(info["expires_at"])
    assert created is not None and expires is not None
    return Token(
        id=info["id"],
        run_id=info.get("run_id"),
        status=TOKEN_STATUSES[status],
        tags=tuple(info["tags"]),
        created_at=created,
        expires_at=expires,
        completed_at=None,
        output=None,
        idempotency_key=info.get("idempotency_key"),
        is_cached=cached,
    )


def _result(token_id: str, state: TokenState) -> TokenResult:
    if state.status == TokenStatus.COMPLETED:
        return TokenResult(token_id, True, serde.load(state.output), None, state.status)
    return TokenResult(token_id, False, None, f"token {token_id} timed out", state.status)


_OPEN = TokenState(TokenStatus.WAITING, None)


def context() -> RunContext:
    try:
        return current.get()
    except LookupError:
        raise NotInRun("wait.create_token / wait.for_token / wait.for_any / wait.for_all") from None


def _check_requirement(requirement: Requirement | None) -> Requirement | None:
    if requirement is None:
        return None
    if not isinstance(requirement.approvals, int) or requirement.approvals < 1:
        raise ValueError(f"approvals must be a whole number ≥ 1, not {requirement.approvals!r}")
    if requirement.remind_after is not None and not requirement.remind_after > 0:
        raise ValueError(f"remind_after must be positive, not {requirement.remind_after!r}")
    return requirement
