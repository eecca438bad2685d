"""A throwaway PostgreSQL server for the tests (initdb into a temp dir, listening on 127.0.0.1),
and fresh databases on it.

Started once per test session when the server binaries are installed (Debian `postgresql`, which
`make test` installs) and no server is named already. Runs as the `postgres` user when the
tests run as root (initdb refuses root). Durability is off (fsync): the tests need a real
server's SQL and locking, not its crash safety, and CI time matters.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    url: str
    datadir: Path
    bindir: Path
    prefix: list[str]

    def stop(self) -> None:
        subprocess.run(
            [
                *self.prefix,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(durable: bool = False) -> Server | None:
    """Start a server, or None when PostgreSQL is not installed (the tests then skip).
    *durable*: fsync and synchronous commits on, as a real server runs (benchmarks)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        return None
    bindir = bins[-1].parent
    base = Path(tempfile.mkdtemp(prefix="hitl-pg-"))
    datadir = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            return None
        os.chown(base, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            options,
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        timeout=90,
        check=True,
    )
    return Server(f"postgresql://postgres@127.0.0.1:{port}/postgres", datadir, bindir, prefix)


SKIP = "no PostgreSQL: install it (make test does) or set HITL_TEST_PG"


def server_url() -> str | None:
    """The server for the tests: named by hand (HITL_TEST_PG), or the one conftest started."""
    return os.environ.get("HITL_TEST_PG") or os.environ.get("HITL_TEST_PG_TARGET")


def admin(sql: str) -> None:
    """Run *sql* outside a transaction (CREATE / DROP DATABASE) on the test server."""
    import psycopg

    server = server_url()
    assert server is not None
    with psycopg.connect(_plain(server), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def create_database(prefix: str) -> tuple[str, str]:
    """A fresh database: its name and its plain ``postgresql://`` URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE DATABASE "{name}"')
    return name, _plain(str(server_url())).rsplit("/", 1)[0] + f"/{name}"


def drop_database(name: str) -> None:
    admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")
