"""`hitl worker`: execute runs and fire timers with no window, until SIGTERM or SIGINT.

A worker is an engine that executes db-change runs with this machine's target profiles on a
store it does not migrate (`hitl migrate` does, once). It prints one line per run transition it
sees on the store, its own and other processes'. Stopped by a signal it hands its runs in
flight back to the queue; killed, it is taken over by another engine (at once on this host,
after the lease on another).

With --http HOST:PORT it also serves signed links (`hitl link`) in the same loop, beside its
run execution: the decisions made through them are its engine's, recorded via link by the
name each link was made for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..agent import TASK_NAME, Targets, db_change_task
from ..application import local_targets
from ..config import ConfigError, load_settings
from ..engine import Engine, EventStream, TokenCompleted, redact_url
from ..links import LinkSecretUnavailable, LinkServer, ServeFailed, link_app, link_secret
from . import worklog
from .command import Command
from .errors import CliError, Output
from .inputs import connect_url, store_url
from .store_errors import store_error

STOP_WAIT = 30.0
"""Longest wait for the engine to hand its runs back, and for the log to drain, on a signal."""
LOOKUP_WAIT = 5.0
"""Longest wait for who decided a token, read for its log line (the line goes without it)."""
CHECK_OVERDUE = 30.0
"""How often the worker looks for reviews past their rule's remind_after, by default."""


@dataclass(frozen=True)
class Worker(Command[None]):
    """`hitl worker`: execute runs on the store until a signal asks to stop."""

    store: str
    json: bool
    check_overdue: float = CHECK_OVERDUE
    http: tuple[str, int] | None = None
    """Where to serve signed links, or None."""

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Worker:
        every = getattr(args, "check_overdue", None) or CHECK_OVERDUE
        return cls(store_url(args.store), args.json, every, getattr(args, "http", None))

    def execute(self) -> None:
        targets = _machine_targets()
        secret = None
        if self.http is not None:  # before anything starts: no secret, no worker
            try:
                secret = link_secret(self.store)
            except LinkSecretUnavailable as exc:
                targets.close()
                raise CliError(f"--http: {exc}") from None
        # The engine logs what it retries (a lost connection, a failed heartbeat): show it.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.WARNING)
        logging.getLogger("hitl_desktop").addHandler(handler)
        try:
            asyncio.run(self._serve(targets, secret))
        finally:
            logging.getLogger("hitl_desktop").removeHandler(handler)
            targets.close()

    def render(self, result: None) -> Output:
        return Output({}, "")  # every line, "stopped" the last, was printed as it happened

    async def _serve(self, targets: Targets, secret: bytes | None) -> None:
        stop = asyncio.Event()
        handled = _on_signals(stop.set)
        engine = Engine(connect_url(self.store), tasks=[db_change_task(targets)], migrate=False)
        stream = engine.events()  # before start: its recoveries and claims are logged too
        logger: asyncio.Task[None] | None = None
        reminders: asyncio.Task[None] | None = None
        links: LinkServer | None = None
        try:
            if self.http is not None and secret is not None:
                links = LinkServer(link_app(engine, secret), *self.http)
                try:  # before the engine starts: a busy address is told before any run moves
                    links.bind()
                except ServeFailed as exc:
                    links = None
                    raise CliError(f"--http: {exc}") from None
            try:
                await engine.start()
            except Exception as exc:
                raise store_error(self.store, exc) from None
            shown, profiles = redact_url(self.store), sorted(targets.profiles)
            entry = worklog.started(
                time.time(), engine.id, shown, engine.actor, TASK_NAME, profiles
            )
            self._emit(entry, engine.id)
            logger = asyncio.create_task(self._log(engine, stream), name="hitl-worker-log")
            reminders = asyncio.create_task(self._remind(engine), name="hitl-worker-overdue")
            if links is not None:
                self._emit_serving(await links.start(), engine.id)
            await stop.wait()
        finally:
            if links is not None:  # first: no decision may arrive as the engine stops
                await links.stop()
            if reminders is not None:
                reminders.cancel()
            await _stop(engine, logger)
            for sig in handled:
                asyncio.get_running_loop().remove_signal_handler(sig)
        self._emit(worklog.stopped(time.time(), engine.id), engine.id)

    async def _log(self, engine: Engine, stream: EventStream) -> None:
        async for event in stream:  # ends when the engine stops
            decided_by = via_link = None
            if isinstance(event, TokenCompleted):
                decided_by, via_link = await _decided_by(engine, event)
            self._emit(worklog.transition(event, decided_by, via_link), engine.id)

    async def _remind(self, engine: Engine) -> None:
        """One line per review that waited past its rule's remind_after (each once)."""
        told: set[str] = set()
        while True:  # cancelled when the worker stops
            await asyncio.sleep(self.check_overdue)
            try:
                overdue = await engine.overdue_reviews()
            except Exception:  # a lost connection: the engine logs it; try again later
                continue
            for review in overdue:
                if review.token_id not in told:
                    told.add(review.token_id)
                    self._emit(worklog.overdue(time.time(), review), engine.id)

    def _emit_serving(self, url: str, worker: str) -> None:
        at = datetime.now(UTC)
        if self.json:
            moment = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            line = json.dumps({"at": moment, "event": "serving", "worker": worker, "url": url})
        else:
            moment = at.isoformat(timespec="seconds").replace("+00:00", "Z")
            line = f"{moment} worker {worker} serves signed links on {url}"
        self._print(line)

    def _emit(self, entry: worklog.Entry, worker: str) -> None:
        self._print(worklog.as_json(entry) if self.json else worklog.as_text(entry, worker))

    def _print(self, line: str) -> None:
        try:
            print(line, flush=True)
        except BrokenPipeError:
            # Whoever read the log went away: the runs matter more than their log, so keep
            # executing and write the rest nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _machine_targets() -> Targets:
    """This machine's target profiles; a worker without any would fail every run it took."""
    try:
        targets = local_targets(load_settings())
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if not targets.profiles:
        raise CliError(
            "this machine has no target profiles, so a worker here would fail every run it "
            "took: add the profiles the consoles use, with 'hitl profile add NAME --target URL'"
        )
    return targets


def _on_signals(callback: Callable[[], None]) -> list[signal.Signals]:
    """Call *callback* on SIGTERM and SIGINT; the signals handled (none where the loop cannot
    handle signals: there Ctrl-C cancels the run and the engine still stops in `finally`)."""
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, callback)
        except NotImplementedError:
            continue
        handled.append(sig)
    return handled


async def _stop(engine: Engine, logger: asyncio.Task[None] | None) -> None:
    """Stop the engine (its runs in flight go back to the queue), then let the log drain."""
    try:
        async with asyncio.timeout(STOP_WAIT):
            await engine.stop()
            if logger is not None:
                await logger
    except TimeoutError:
        raise CliError(
            f"the worker did not stop within {STOP_WAIT:.0f} s; another engine takes its runs "
            "over once this process is gone"
        ) from None


async def _decided_by(engine: Engine, event: TokenCompleted) -> tuple[str | None, str | None]:
    """Who completed *event*'s token, as the store recorded it, and who the signed link that
    decided it was made for (None: not through a link)."""
    try:
        async with asyncio.timeout(LOOKUP_WAIT):
            token = await engine.get_token(event.token_id)
    except Exception:  # the line is worth more than the names: log it without (or the event's)
        return None, worklog.link_holder(event.output)
    return token.completed_by, worklog.link_holder(token.output)
