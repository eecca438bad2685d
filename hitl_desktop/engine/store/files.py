"""A SQLite store's files are readable by their owner only: runs hold requests, proposals and
decisions.

SQLite creates the `-wal`, `-shm` and `-journal` files with the permission bits of the main
file, so a main file created 0600 keeps all of them private from their first byte. Stores made
before (with the process umask, usually 0644) are tightened when they are opened.
"""

from __future__ import annotations

import logging
import os
import stat

log = logging.getLogger("hitl_desktop.engine")

PRIVATE = 0o600
COMPANIONS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps next to a database, named by suffix."""


def is_file_store(path: str) -> bool:
    """Whether *path* (from sqlite_database) names a file, not an in-memory database."""
    return path not in ("", ":memory:") and not path.startswith("file:")


def create_private(path: str) -> bool:
    """Create *path* empty and 0600 when it does not exist; whether this call created it.

    An empty file is an empty SQLite database. O_EXCL: of processes creating the same store at
    once, one creates it and the others open what it made."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, PRIVATE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def tighten(path: str) -> None:
    """Make the store file and the companions it has 0600, where this user owns them and they
    are more open than that. A failure is logged, not raised: it must not stop the app."""
    getuid = getattr(os, "getuid", None)
    for name in (path, *(path + suffix for suffix in COMPANIONS)):
        try:
            info = os.stat(name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot check the permissions of the store file %s: %s", name, exc)
            continue
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) & ~PRIVATE == 0:
            continue
        if getuid is not None and info.st_uid != getuid():
            continue  # another user's file: theirs to protect, and chmod would fail
        try:
            os.chmod(name, PRIVATE)
        except OSError as exc:
            log.warning(
                "the store file %s is readable by others (mode %o) and could not be made "
                "private: %s",
                name,
                stat.S_IMODE(info.st_mode),
                exc,
            )
