"""What every `hitl` command is: an object prepared from the parsed arguments (its inputs
checked before anything is opened), then run, then rendered."""

from __future__ import annotations

import argparse
import asyncio
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, Self, TypeVar

from ..agent import Targets, db_change_task
from ..application import local_targets
from ..config import ConfigError, load_settings
from ..engine import Engine, EngineError
from .errors import CliError, Output
from .inputs import connect_url, is_team_store
from .store_errors import store_error

R = TypeVar("R")


class Command(ABC, Generic[R]):
    """One command: `prepare` checks its arguments, `execute` does the work and may fail with a
    CliError, and `render` formats the result (outside the error handling: a bug there should
    show its traceback, not blame the store)."""

    @classmethod
    @abstractmethod
    def prepare(cls, args: argparse.Namespace) -> Self: ...

    @abstractmethod
    def execute(self) -> R: ...

    @abstractmethod
    def render(self, result: R) -> Output: ...


class StoreCommand(Command[R]):
    """A command on a store: `fetch` makes its engine calls, inside the store's error handling."""

    store: str
    """The URL of the store, checked by `prepare`."""

    executes_runs: ClassVar[bool] = False
    """Whether db-change runs execute here, so this machine's target profiles are needed."""

    @abstractmethod
    async def fetch(self, engine: Engine, targets: Targets) -> R: ...

    def execute(self) -> R:
        return asyncio.run(self._on_store())

    async def _on_store(self) -> R:
        targets = _machine_targets() if self.executes_runs else Targets()
        # A team store is created and upgraded by `hitl migrate` only, never as a side effect.
        engine = Engine(
            connect_url(self.store),
            tasks=[db_change_task(targets)],
            migrate=not is_team_store(self.store),
        )
        try:
            await engine.open()
            return await self.fetch(engine, targets)
        except CliError:
            raise
        except EngineError as exc:
            raise CliError(str(exc)) from None
        except Exception as exc:  # the store is unreachable, not a store, locked, ...
            raise store_error(self.store, exc) from None
        finally:
            await engine.stop()
            targets.close()


def _machine_targets() -> Targets:
    """This machine's target profiles, for the commands that execute db-change runs."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return local_targets(settings)
