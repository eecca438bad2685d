"""The proposing side's connection to the target: read-only wherever the driver allows it.

Proposing (reflecting the catalogue, the read tools, validation, the diff, `check_edits`) only
reads, so it works under a database account that may only SELECT, and a bug or a model cannot
turn it into a write: SQLite files are opened with ``mode=ro``, PostgreSQL sessions start every
transaction READ ONLY. Only `apply.writer_engine` writes, inside the approved apply transaction.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

_PG_READ_ONLY = "-c default_transaction_read_only=on"


def read_only_url(url: str | sa.URL) -> tuple[sa.URL, dict[str, Any]]:
    """*url* made read-only, and the connect arguments that go with it."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return parsed, {}  # a private in-memory database has nobody else to protect
        if parsed.query.get("uri") in ("true", "1"):
            query = {**parsed.query, "mode": "ro"}
        else:
            database = "file:" + quote(os.path.abspath(database))
            query = {**parsed.query, "mode": "ro", "uri": "true"}
        return parsed.set(database=database, query=query), {}
    if backend in ("postgresql", "postgres"):
        options = parsed.query.get("options")
        text = _PG_READ_ONLY if not options else f"{options} {_PG_READ_ONLY}"
        return parsed.difference_update_query(["options"]), {"options": text}
    return parsed, {}


def reader_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """A sync engine on the target that cannot write (see the module's docstring)."""
    read_only, connect_args = read_only_url(url)
    if connect_args:
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), **connect_args}
    return sa.create_engine(read_only, **kwargs)
