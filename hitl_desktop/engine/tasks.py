"""Tasks: named async functions the engine can run, registered with @task."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .context import RunContext

TaskFn = Callable[["RunContext", Any], Awaitable[Any]]
F = TypeVar("F", bound=TaskFn)
OutputCheck = Callable[[Any], object]
"""Checks an output a token of the task is about to be completed with; raises to refuse it."""


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    fn: TaskFn
    code_hash: str
    """Hash of the function's bytecode, recorded with each run for diagnosing replays."""
    check_output: OutputCheck | None = None
    """See task()."""
    audit: bool = False
    """See task()."""


_registry: dict[str, Task] = {}


def _code_hash(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    raw = code.co_code + repr(code.co_consts).encode() if code is not None else repr(fn).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def task(
    name: str, *, check_output: OutputCheck | None = None, audit: bool = False
) -> Callable[[F], F]:
    """Register an async function `fn(ctx, payload)` as the task *name*.

    *check_output* guards the decisions this task's runs wait for: it is called with the
    output (decoded JSON) that a token the run created or waits on is being completed with,
    in the completion's own transaction, before anything changes. An exception it raises
    refuses the output: `Engine.complete_token` raises `OutputRefused` naming the reason, and
    the token and its run keep waiting. Any engine with the task registered checks, whether
    or not it executes runs. The check runs while the store is locked for writing: keep it a
    quick, pure function of the output (parse and validate, no I/O).

    With *audit*, the runs of this task leave entries in the store's audit trail, in the
    transactions that make them: each completion of a token they wait on (with its output),
    each expiry, a cancel, and how each run ended (see Engine.audit_entries)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a task needs a non-empty name")
    if check_output is not None and not callable(check_output):
        raise TypeError(f"check_output of task {name!r} must be callable, not {check_output!r}")

    def register(fn: F) -> F:
        if not inspect.iscoroutinefunction(cast(Any, fn)):
            raise TypeError(f"task {name!r} must be an async function (async def)")
        found = Task(name, fn, _code_hash(fn), check_output, audit)
        fn.__hitl_task__ = found  # type: ignore[attr-defined]
        # A later definition under the same name replaces the earlier one, as a reload would.
        _registry[name] = found
        return fn

    return register


def registry(tasks: Iterable[TaskFn] | None = None) -> dict[str, Task]:
    """The tasks an engine runs: the given functions (each decorated with @task), or all."""
    if tasks is None:
        return dict(_registry)
    chosen: dict[str, Task] = {}
    for fn in tasks:
        found = getattr(fn, "__hitl_task__", None)
        if not isinstance(found, Task):
            raise ValueError(f"{getattr(fn, '__qualname__', fn)!r} is not decorated with @task")
        chosen[found.name] = found
    return chosen
