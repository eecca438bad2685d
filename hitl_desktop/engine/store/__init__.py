"""The engine's store: a system database (database.py) with SQLite and PostgreSQL dialects,
its schema and migrations, and the transactions that read and write it."""

from __future__ import annotations

from ...units.urls import sqlite_database
from .database import SystemDatabase
from .history import LostOwnership
from .postgres import PostgresDatabase
from .sqlite import SqliteDatabase

__all__ = ["LostOwnership", "PostgresDatabase", "SqliteDatabase", "SystemDatabase", "open_database"]


async def open_database(
    url: str, synchronous: str = "FULL", actor: str | None = None, migrate: bool = True
) -> SystemDatabase:
    """Open and migrate the store at *url* (a SQLite file or a PostgreSQL database); *actor*:
    see SqliteDatabase.open (PostgreSQL tells who the session is). With *migrate* False, a
    store that is not at this version's schema is refused, naming `hitl migrate`."""
    path = sqlite_database(url)
    if path is not None:
        return await SqliteDatabase.open(url, path, synchronous, actor, migrate)
    return await PostgresDatabase.open(url, migrate)
