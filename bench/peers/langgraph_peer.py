"""LangGraph: a StateGraph step → approve → step whose middle node calls interrupt().

Checkpointed by AsyncSqliteSaver on a SQLite file; one thread id per run. The first ainvoke runs
step_a and stops at the interrupt (the caller gets `__interrupt__`); the decision resumes it with
`Command(resume=...)` on the same thread id, and that ainvoke returns the finished state.

Durability: the saver sets journal_mode=WAL itself (in setup()) and leaves synchronous at
SQLite's default, FULL; the connection is opened here so that both are set explicitly.
The graph runs with `durability="exit"` (BENCH_LANGGRAPH_DURABILITY overrides: "async", the
default, or "sync"): LangGraph's fastest documented mode, which writes the checkpoint when the
graph stops (at the interrupt and at the end) instead of after every node. For this graph that
keeps the same guarantees as the others: the pause is on disk before the caller hears of it and
the result is on disk before the resuming call returns; a crash inside a step reruns that step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypedDict

import aiosqlite
from common import SYNCHRONOUS_NAMES, main
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

DURABILITY = os.environ.get("BENCH_LANGGRAPH_DURABILITY", "exit")


class State(TypedDict, total=False):
    x: int
    a: int
    decision: int
    b: int


async def step_a(state: State) -> State:
    return {"a": state["x"] + 1}


async def approve(state: State) -> State:
    return {"decision": interrupt({"a": state["a"]})}


async def step_b(state: State) -> State:
    return {"b": state["a"] + state["decision"]}


def build() -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("step_a", step_a)
    builder.add_node("approve", approve)
    builder.add_node("step_b", step_b)
    builder.add_edge(START, "step_a")
    builder.add_edge("step_a", "approve")
    builder.add_edge("approve", "step_b")
    builder.add_edge("step_b", END)
    return builder


class LangGraph:
    name = "langgraph"

    async def start(self, path: Path) -> None:
        self.conn = await aiosqlite.connect(path)
        await self.conn.execute("PRAGMA journal_mode=WAL")
        await self.conn.execute("PRAGMA synchronous=FULL")
        self.saver = AsyncSqliteSaver(self.conn)
        await self.saver.setup()
        self.graph = build().compile(checkpointer=self.saver)

    async def begin(self, i: int) -> dict[str, Any]:
        config = {"configurable": {"thread_id": f"run-{i}"}}
        out = await self.graph.ainvoke({"x": i}, config, durability=DURABILITY)
        if "__interrupt__" not in out:
            raise RuntimeError(f"langgraph: run {i} did not stop at the interrupt: {out!r}")
        return config

    async def decide(self, config: dict[str, Any], value: int) -> Any:
        out = await self.graph.ainvoke(Command(resume=value), config, durability=DURABILITY)
        return out.get("b")

    async def settings(self) -> dict[str, Any]:
        async with self.conn.execute("PRAGMA synchronous") as cur:
            (sync,) = await cur.fetchone()
        async with self.conn.execute("PRAGMA journal_mode") as cur:
            (journal,) = await cur.fetchone()
        return {
            "synchronous": SYNCHRONOUS_NAMES.get(sync, sync),
            "journal_mode": journal,
            "durability": DURABILITY,
        }

    async def stop(self) -> None:
        await self.conn.close()


if __name__ == "__main__":
    main(LangGraph())
