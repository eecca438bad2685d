"""Is the engine that owns a run still alive? Decides when its runs may be taken over.

On the same host the answer is immediate: the owner's process is gone, or its pid now belongs
to a process that started at another time. Across hosts (a shared PostgreSQL store) an owner
is dead once its heartbeat is older than the lease.
"""

from __future__ import annotations

import os
import socket

from .store.records import EngineRecord

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


def this_engine(engine_id: str, now: float) -> EngineRecord:
    """The record this process registers for its engine *engine_id*."""
    pid = os.getpid()
    return EngineRecord(engine_id, HOST, pid, process_start(pid), now, now)


def is_dead(engine: EngineRecord, now: float, lease: float) -> bool:
    if engine.stopped_at is not None:
        return True
    if engine.host == HOST:
        pid = engine.pid
        if not pid_alive(pid):
            return True
        start = engine.proc_start
        return start is not None and process_start(pid) not in (None, start)
    return engine.heartbeat_at < now - lease
