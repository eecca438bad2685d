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


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    fn: TaskFn
    code_hash: str
    """Hash of the function's bytecode, recorded with each run for diagnosing replays."""


_registry: dict[str, Task] = {}


def _code_hash(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    raw = code.co_code + repr(code.co_consts).encode() if code is not None else repr(fn).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def task(name: str) -> Callable[[F], F]:
    """Register an async function `fn(ctx, payload)` as the task *name*."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a task needs a non-empty name")

    def register(fn: F) -> F:
        if not inspect.iscoroutinefunction(cast(Any, fn)):
            raise TypeError(f"task {name!r} must be an async function (async def)")
        found = Task(name, fn, _code_hash(fn))
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
