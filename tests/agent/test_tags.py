from __future__ import annotations

from pathlib import Path

from hitl_desktop.agent.tags import token_tags
from hitl_desktop.engine import Engine, RunContext, RunStatus, task, wait
from hitl_desktop.engine.context import MAX_TAG_LENGTH, MAX_TAGS


def test_a_few_tables_are_tagged_one_by_one_sorted_and_once() -> None:
    assert token_tags(["refunds", "invoices", "refunds"]) == ["invoices", "refunds"]
    assert token_tags([]) == []


def test_more_tables_than_tags_end_with_a_count_of_the_rest() -> None:
    tables = [f"t{n:02}" for n in range(13)]
    tags = token_tags(reversed(tables))
    assert len(tags) == MAX_TAGS
    assert tags == [*tables[: MAX_TAGS - 1], "+4 more tables"]
    assert token_tags(tables[:MAX_TAGS]) == tables[:MAX_TAGS]


def test_a_table_name_longer_than_a_tag_is_shortened() -> None:
    first, second = "x" * 150 + "_first", "x" * 150 + "_second"
    tags = token_tags([first, second])
    assert [len(tag) for tag in tags] == [MAX_TAG_LENGTH, MAX_TAG_LENGTH]
    assert tags[0].startswith("xxx") and "…" in tags[0] and tags[0].endswith("_first")
    assert tags[1].endswith("_second")


async def test_the_engine_accepts_the_tags_of_a_proposal_on_many_long_tables(
    tmp_path: Path,
) -> None:
    tables = [f"{'t' * 200}{n:02}" for n in range(25)]

    @task("tags_of_many_tables")
    async def tags_of_many_tables(ctx: RunContext, payload: object) -> str:
        token = await wait.create_token(timeout="1h", tags=token_tags(tables))
        return token.id

    async with Engine(f"sqlite:///{tmp_path / 'runs.db'}", tasks=[tags_of_many_tables]) as engine:
        run = await engine.wait_for((await engine.trigger("tags_of_many_tables")).id)
        assert run.status == RunStatus.COMPLETED, run.error
        token = await engine.get_token(run.output)
    assert len(token.tags) == MAX_TAGS and token.tags[-1] == "+16 more tables"
    assert all(len(tag) <= MAX_TAG_LENGTH for tag in token.tags)
