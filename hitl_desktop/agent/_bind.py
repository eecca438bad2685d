"""Where SQL runs: a caller's connection, a short one from an engine, or off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import sqlalchemy as sa

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio brings the ORM: a tenth of the app's start
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")

Bind = sa.Engine | sa.Connection
"""A sync target: an Engine (a connection is opened and closed) or the caller's Connection, whose
transaction is used as it is (the apply step validates inside its own locked transaction)."""

AsyncBind: TypeAlias = "sa.Engine | AsyncEngine | AsyncConnection"
"""An async target. A sync Connection is not accepted: it belongs to the thread that opened it."""


@contextmanager
def connection(bind: Bind) -> Iterator[sa.Connection]:
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


async def run_sync(bind: AsyncBind, fn: Callable[[sa.Connection], T]) -> T:
    """Run *fn* with a sync connection without blocking the running event loop."""
    if isinstance(bind, sa.Engine):
        engine = bind

        def work() -> T:
            with engine.connect() as conn:
                return fn(conn)

        return await asyncio.to_thread(work)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    if isinstance(bind, AsyncConnection):
        return await bind.run_sync(fn)
    if isinstance(bind, AsyncEngine):
        async with bind.connect() as conn:
            return await conn.run_sync(fn)
    raise TypeError(
        f"expected an Engine, AsyncEngine or AsyncConnection, got {type(bind).__name__}"
    )
