"""Is the engine that owns a run still alive? Decides when its runs may be taken over.

On the same host the answer is immediate: the owner's process is gone, or its pid now belongs
to a process that started at another time. Across hosts (a shared PostgreSQL store) an owner
is dead once its heartbeat is older than the lease.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

HOST = socket.gethostname()


def process_start(pid: int) -> str | None:
    """The kernel's start time of *pid* (Linux), to tell a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22, counted after the command name, which may itself contain spaces and parens.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there; rely on the lease
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process its parent has not reaped yet still answers signal 0: a zombie is dead.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    end = stat.rfind(b")")
    return stat[end + 2 : end + 3] != b"Z"


def identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": HOST, "pid": pid, "proc_start": process_start(pid)}


def is_dead(row: Mapping[str, Any], now: float, lease: float) -> bool:
    if row["stopped_at"] is not None:
        return True
    if row["host"] == HOST:
        pid = int(row["pid"])
        if not pid_alive(pid):
            return True
        start = row["proc_start"]
        return start is not None and process_start(pid) not in (None, start)
    return float(row["heartbeat_at"]) < now - lease
