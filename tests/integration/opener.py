"""Open many new stores in step with another process: `python opener.py DIR COUNT AT`.

Opens (creates and migrates) DIR/store-i.db through Engine.open() at the epoch time
AT + i × SPACING, as two consoles (or a console and the CLI) starting together would. DIR may
instead be a PostgreSQL URL ending in `_`: the stores are then the databases DIR0, DIR1, ….
Prints one JSON line: {"failed": {i: error}}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from hitl_desktop.engine import Engine

SPACING = 0.15  # seconds between two stores' instants: more than an open takes, so none is late


async def open_all(directory: str, count: int, at: float) -> dict[int, str]:
    failed: dict[int, str] = {}
    on_server = "://" in directory
    if not on_server:
        warm_up = Engine(f"sqlite:///{Path(directory) / f'warm-up-{os.getpid()}.db'}")
        await warm_up.open()  # imports Alembic now, so that the first timed open is not late
        await warm_up.stop()
    for i in range(count):
        url = f"{directory}{i}" if on_server else f"sqlite:///{Path(directory) / f'store-{i}.db'}"
        engine = Engine(url)
        # A blocking sleep on purpose: nothing else runs on this loop, and it is more precise.
        time.sleep(max(0.0, at + i * SPACING - time.time()))
        try:
            await engine.open()
        except Exception as exc:
            failed[i] = f"{type(exc).__name__}: {exc}"
        finally:
            await engine.stop()
    return failed


def main(argv: list[str]) -> int:
    directory, count, at = argv[1], int(argv[2]), float(argv[3])
    print(json.dumps({"failed": asyncio.run(open_all(directory, count, at))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
