"""DBOS Transact: a @DBOS.workflow with two @DBOS.steps around DBOS.recv, resumed by DBOS.send.

Written the way DBOS's docs write a workflow that waits for a person (the checkout example of
"Communicating with Workflows"): the workflow publishes what it waits on with set_event, the
caller reads it with get_event, the decision arrives with send and the workflow takes it with
recv(topic, timeout_seconds=...). The async forms are used (`*_async`), as DBOS recommends for
an asyncio application: the workflows run as tasks on the caller's event loop.

System database: a SQLite file. On SQLite DBOS has no push notification, so recv and get_event
wake by polling; `notification_listener_polling_interval_sec` is set to 0.001 s, the smallest
value DBOS accepts (default 1.0 s).

Durability: DBOS opens SQLite in its default rollback-journal mode (journal_mode=DELETE) with
SQLite's default synchronous=FULL, and has no setting for either. To store the same way as the
others, a SQLAlchemy "connect" listener (a public SQLAlchemy hook, registered before DBOS creates
its engine) sets journal_mode=WAL and synchronous=FULL on every connection DBOS opens.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import SYNCHRONOUS_NAMES, TOKEN_TIMEOUT_S, main
from dbos import DBOS, DBOSConfig

POLLING_S = float(os.environ.get("BENCH_DBOS_POLLING_S", "0.001"))
JOURNAL = os.environ.get("BENCH_DBOS_JOURNAL", "WAL")
"""WAL (default: as the others) or DELETE (DBOS's own default), for a comparison run."""


@sa.event.listens_for(sa.engine.Engine, "connect")
def _durability(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute(f"PRAGMA journal_mode={JOURNAL}")
        dbapi_conn.execute("PRAGMA synchronous=FULL")


@DBOS.step()
async def step_a(x: int) -> int:
    return x + 1


@DBOS.step()
async def step_b(a: int, decision: int) -> int:
    return a + decision


@DBOS.workflow()
async def cycle(x: int) -> int:
    a = await step_a(x)
    await DBOS.set_event_async("waiting", a)  # tell the caller what the decision is about
    decision = await DBOS.recv_async("decision", timeout_seconds=TOKEN_TIMEOUT_S)
    return await step_b(a, decision)


class Dbos:
    name = "dbos"

    async def start(self, path: Path) -> None:
        self.path = path
        config: DBOSConfig = {
            "name": "peer-bench",
            "system_database_url": f"sqlite:///{path}",
            "notification_listener_polling_interval_sec": POLLING_S,
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        logging.getLogger("dbos").setLevel(logging.WARNING)

    async def begin(self, i: int) -> Any:
        handle = await DBOS.start_workflow_async(cycle, i)
        a = await DBOS.get_event_async(handle.workflow_id, "waiting", timeout_seconds=60)
        if a != i + 1:
            raise RuntimeError(f"dbos: run {i} published {a!r}")
        return handle

    async def decide(self, handle: Any, value: int) -> Any:
        await DBOS.send_async(handle.workflow_id, value, "decision")
        return await handle.get_result()

    async def settings(self) -> dict[str, Any]:
        import dbos._dbos  # private: only to read the settings of DBOS's own connections

        instance = dbos._dbos._dbos_global_instance
        assert instance is not None
        with instance._sys_db.engine.connect() as c:
            sync = c.exec_driver_sql("PRAGMA synchronous").scalar()
            journal = c.exec_driver_sql("PRAGMA journal_mode").scalar()
        return {
            "synchronous": SYNCHRONOUS_NAMES.get(sync, sync),
            "journal_mode": journal,
            "notification_listener_polling_interval_sec": POLLING_S,
        }

    async def stop(self) -> None:
        DBOS.destroy(destroy_registry=False)


if __name__ == "__main__":
    main(Dbos())
