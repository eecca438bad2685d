"""Serving the links app with uvicorn inside the caller's asyncio loop (the worker's, beside its
run execution), on a socket bound here so a busy address is a clear error, not an exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

START_WAIT = 10.0
"""Longest wait for the server to start listening, in seconds."""
STOP_WAIT = 10
"""Longest wait for requests in flight to finish when the server stops."""


class ServeFailed(RuntimeError):
    """The address cannot be served (taken, not this machine's, not allowed)."""


class _InLoopServer(uvicorn.Server):
    # The worker handles SIGTERM and SIGINT itself and stops the server: uvicorn must not
    # take the signals over (nor raise them again when it stops).
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from ``HOST:PORT`` (``[::1]:8080`` for IPv6); port 0 picks a free one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host, int(port)


class LinkServer:
    """*app* served on *host*:*port* until stop()."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.host, self.port = host, port
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=STOP_WAIT,
        )
        self._server = _InLoopServer(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def bind(self) -> None:
        """Take the address now (ServeFailed when it cannot be); requests wait for start()."""
        if self._socket is None:
            self._socket = _bind(self.host, self.port)
            self.port = self._socket.getsockname()[1]

    async def start(self) -> str:
        """Listen; returns the URL served (with the port chosen when 0 was asked)."""
        self.bind()
        sock = self._socket
        assert sock is not None
        self._task = asyncio.create_task(self._server.serve([sock]), name="hitl-links-http")
        async with asyncio.timeout(START_WAIT):
            while not self._server.started:  # bounded by START_WAIT
                if self._task.done():
                    self._task.result()
                    raise ServeFailed(f"the link server on {self.url} stopped as it started")
                await asyncio.sleep(0.01)
        return self.url

    async def stop(self) -> None:
        if self._task is None:
            if self._socket is not None:
                self._socket.close()
            return
        self._server.should_exit = True
        try:
            async with asyncio.timeout(STOP_WAIT + 5):
                await self._task
        except TimeoutError:
            self._task.cancel()
        except Exception:  # it failed while serving: the engine must still stop after this
            log.exception("the link server on %s failed", self.url)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise ServeFailed(f"cannot serve links on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
