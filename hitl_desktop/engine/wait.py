"""`wait.create_token` / `wait.for_token` / `wait.for_any` / `wait.for_all`: the waitpoint
API used inside tasks.

token = await wait.create_token(timeout="10m", tags=["refund"])
result = await wait.for_token(token)   # suspends the run until completed or timed out
both = await wait.for_all([t1, t2], timeout="1d")   # until both finish, or the day passes
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from .context import context
from .models import GroupResult, PolicyRecord, Requirement, Token, TokenResult


async def create_token(
    timeout: str | float | timedelta | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    idempotency_key: str | None = None,
    idempotency_key_ttl: str | float | timedelta | None = None,
    requirement: Requirement | None = None,
) -> Token:
    """Create a waitpoint token for the current run.

    *timeout* defaults to the engine's default (24 h): a token never waits for ever. With an
    *idempotency_key*, a live token holding the same key (within *idempotency_key_ttl*) is
    returned instead (`is_cached=True`). A replay returns the same token. With a
    *requirement* the token is a review's: decided with Engine.decide, under its rules.
    """
    return await context().create_token(
        timeout, tags, idempotency_key, idempotency_key_ttl, requirement
    )


async def current_policy() -> PolicyRecord | None:
    """The store's approval policy in force (read live: call it inside a step, so that a
    replay sees what the first execution saw)."""
    return await context().current_policy()


async def for_token(token: Token | str) -> TokenResult:
    """Wait until *token* is completed (ok=True, output) or times out (ok=False).

    The run is suspended meanwhile: its coroutine ends and it exists only in the store.
    """
    return await context().for_token(token)


async def for_any(
    tokens: Sequence[Token | str], timeout: str | float | timedelta | None = None
) -> GroupResult:
    """Wait until the first of *tokens* finishes (completed or timed out), or *timeout*
    (default: the engine's default token timeout) passes. The run is suspended once,
    whatever the number of tokens (at most 100); `.first` is the token that ended the wait,
    and the others show as still waiting unless they had finished too. A replay returns the
    same result whatever happened to the tokens since."""
    return await context().for_group("any", tokens, timeout)


async def for_all(
    tokens: Sequence[Token | str], timeout: str | float | timedelta | None = None
) -> GroupResult:
    """Wait until every one of *tokens* has finished (completed or timed out), or *timeout*
    passes: then `.timed_out` is True and the tokens still open show as still waiting."""
    return await context().for_group("all", tokens, timeout)


__all__ = ["create_token", "current_policy", "for_all", "for_any", "for_token"]
