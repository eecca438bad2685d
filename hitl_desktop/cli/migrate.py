"""`hitl migrate`: create or upgrade a store's schema, once, as the store's owner. Consoles and
workers on a team store never do it themselves: a store not at their version's schema is
refused with a message naming this command."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from ..engine import migrate_store, redact_url
from .command import Command
from .errors import Output
from .inputs import connect_url, store_url
from .store_errors import store_error


@dataclass(frozen=True)
class Migrate(Command[str]):
    """`hitl migrate`: bring the store's schema to this version's revision."""

    store: str

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Migrate:
        return cls(store_url(args.store, create=True))

    def execute(self) -> str:
        try:
            return asyncio.run(migrate_store(connect_url(self.store)))
        except Exception as exc:
            raise store_error(self.store, exc, migrating=True) from None

    def render(self, result: str) -> Output:
        shown = redact_url(self.store)
        return Output(
            {"store": shown, "revision": result},
            f"store {shown} is at schema revision {result}",
        )
