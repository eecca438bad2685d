"""Engine events and the fan-out that delivers them to every subscriber."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

from .models import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    at: float
    """Epoch seconds when the change was committed."""
    origin: str
    """Id of the engine (process) that made the change; differs from ours for remote changes."""


@quick_init
@dataclass(frozen=True, slots=True)
class RunTriggered(Event):
    task: str


@quick_init
@dataclass(frozen=True, slots=True)
class RunPaused(Event):
    token_id: str


@quick_init
@dataclass(frozen=True, slots=True)
class RunResumed(Event):
    token_id: str | None


@quick_init
@dataclass(frozen=True, slots=True)
class RunCompleted(Event):
    output: Any


@quick_init
@dataclass(frozen=True, slots=True)
class RunFailed(Event):
    error: str
    traceback: str | None


@quick_init
@dataclass(frozen=True, slots=True)
class RunCanceled(Event):
    reason: str | None


@quick_init
@dataclass(frozen=True, slots=True)
class TokenCompleted(Event):
    token_id: str
    output: Any


@quick_init
@dataclass(frozen=True, slots=True)
class TokenTimedOut(Event):
    token_id: str


@quick_init
@dataclass(frozen=True, slots=True)
class TokenReviewed(Event):
    """A reviewer's approval was recorded on a review's token that needs more of them."""

    token_id: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunTriggered,
        RunPaused,
        RunResumed,
        RunCompleted,
        RunFailed,
        RunCanceled,
        TokenCompleted,
        TokenTimedOut,
        TokenReviewed,
    )
}


_DEFAULTS: dict[str, Any] = {
    "task": "",
    "output": None,
    "error": "",
    "traceback": None,
    "reason": None,
}


_EXTRA: dict[str, tuple[type[Event], tuple[str, ...]]] = {
    kind: (cls, tuple(f.name for f in fields(cls) if f.name not in ("run_id", "at", "origin")))
    for kind, cls in EVENT_TYPES.items()
}


def event_from(
    kind: str,
    run_id: str,
    at: float,
    origin: str,
    token_id: str | None,
    data: str | None,
    values: dict[str, Any] | None = None,
) -> Event:
    """Rebuild an event from its row in the event log; *values* is the decoded *data* when
    the caller has it already (events this engine made)."""
    cls, extra = _EXTRA[kind]
    if not extra:
        return cls(run_id, at, origin)
    if values is None:
        values = json.loads(data) if data else {}
    return cls(
        run_id,
        at,
        origin,
        *[token_id if name == "token_id" else values.get(name, _DEFAULTS[name]) for name in extra],
    )


class EventStream:
    """An async iterator over events published after it was created.

    A deque and the futures of whoever waits on it: an asyncio.Queue does the same with a
    bookkeeping of unfinished tasks no one here uses, on every event of every stream."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._events: deque[Event | None] = deque()  # None: the stream ended
        self._waiters: list[asyncio.Future[None]] = []
        hub._streams.add(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        events = self._events
        while not events:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:  # cancelled before an event came
                    self._waiters.remove(waiter)
        event = events[0]
        if event is None:  # left in place: every later call ends too
            raise StopAsyncIteration
        events.popleft()
        return event

    def get_nowait(self) -> Event | None:
        """The next buffered event, or None when none is buffered (or the stream ended)."""
        events = self._events
        if not events or events[0] is None:
            return None
        return events.popleft()

    def _put(self, event: Event | None) -> None:
        self._events.append(event)
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def aclose(self) -> None:
        self._hub._streams.discard(self)
        self._put(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class EventHub:
    def __init__(self) -> None:
        self._streams: set[EventStream] = set()

    def stream(self) -> EventStream:
        return EventStream(self)

    def publish(self, event: Event) -> None:
        for stream in self._streams:
            stream._put(event)

    def close(self) -> None:
        for stream in list(self._streams):
            stream._put(None)
        self._streams.clear()
