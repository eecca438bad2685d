"""How the SQLite store thread hands finished transactions back to an event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

Then = Callable[[Any], None] | None
"""Run in the event loop with a write's result as soon as it is committed, before anything
awaiting the write resumes, and also when the caller stopped waiting: post-commit duties
(events, starting or resuming runs) follow the commit, not the caller."""

Done = tuple[asyncio.Future[Any], bool, Any, Then]
"""A finished transaction on its way back to the loop: future, ok, value or error, hook."""


class Bell:
    """How the store thread hands finished transactions back to one event loop: a signal on a
    file descriptor the loop watches, one read, then every finished future in the queue is
    resolved in that callback. asyncio's own call_soon_threadsafe costs the loop a callback
    object, two reads of its self-pipe and an exception each time; here a wake-up is one write
    and one read. On Linux the descriptor is an eventfd, whose write and read are cheaper
    system calls than a socket's send and recv; elsewhere a socket pair. Loops that cannot
    watch a descriptor (Windows' proactor) get call_soon_threadsafe."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._done: deque[Done] = deque()
        self._signal, self._clear, self._fileno, self._close = _doorbell()
        try:
            loop.add_reader(self._fileno, self._ring)
        except NotImplementedError:
            self._close()
            self.watched = False
        else:
            self.watched = True

    def deliver(self, done: Sequence[Done]) -> None:
        """From the store thread."""
        if not self.watched:
            # RuntimeError: the loop closed while we worked; nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_resolve, done)
            return
        self._done.extend(done)
        # try/except rather than contextlib.suppress: a context manager per wake-up costs more.
        try:  # noqa: SIM105
            self._signal()
        except OSError:  # full: a signal is already waiting
            pass

    def _ring(self) -> None:
        # Read first, then drain: whatever is queued after the read rings again.
        try:  # noqa: SIM105
            self._clear()
        except BlockingIOError:
            pass
        done = self._done
        while done:
            resolve_one(*done.popleft())

    def close(self) -> None:
        """After the store thread has stopped: nothing signals any more."""
        if self.watched:
            self.watched = False
            if not self.loop.is_closed():
                self.loop.remove_reader(self._fileno)
            self._close()


def _doorbell() -> tuple[Callable[[], Any], Callable[[], Any], int, Callable[[], None]]:
    """(signal, clear, descriptor to watch, close) of a non-blocking wake-up channel."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return (
            functools.partial(os.eventfd_write, fd, 1),
            functools.partial(os.eventfd_read, fd),
            fd,
            functools.partial(os.close, fd),
        )
    rx, tx = socket.socketpair()
    rx.setblocking(False)
    tx.setblocking(False)

    def close() -> None:
        rx.close()
        tx.close()

    return functools.partial(tx.send, b"\0"), functools.partial(rx.recv, 4096), rx.fileno(), close


def resolve_one(future: asyncio.Future[Any], ok: bool, value: Any, then: Then) -> None:
    # The hook runs even when the caller stopped waiting (cancelled): what it does follows
    # from the commit, which happened all the same.
    if ok and then is not None:
        try:
            then(value)
        except BaseException as exc:  # a bug in the hook: the caller hears of it
            if not future.done():
                future.set_exception(exc)
            return
    if future.done():  # cancelled: the caller gave up waiting
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _resolve(done: Sequence[Done]) -> None:
    for future, ok, value, then in done:
        resolve_one(future, ok, value, then)
