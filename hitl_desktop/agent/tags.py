"""The tags a review token carries: the tables a proposal touches, within the engine's limits."""

from __future__ import annotations

from collections.abc import Iterable

from ..engine import MAX_TAG_LENGTH, MAX_TAGS


def _fit(name: str) -> str:
    """*name* within a tag's length; the head and the tail are kept, as long names of one
    database tend to share a prefix and differ at the end."""
    if len(name) <= MAX_TAG_LENGTH:
        return name
    head = (MAX_TAG_LENGTH - 1) // 2
    return name[:head] + "…" + name[len(name) - (MAX_TAG_LENGTH - 1 - head) :]


def token_tags(tables: Iterable[str]) -> list[str]:
    """One tag per table, sorted; past `MAX_TAGS`, the first tables and a ``+N more tables`` tag.

    A token takes at most `MAX_TAGS` tags of at most `MAX_TAG_LENGTH` characters, and a proposal
    may touch any number of tables with names of any length: the tags summarise, the proposal
    itself still lists every table.
    """
    names = sorted({name for name in tables if name})
    if len(names) <= MAX_TAGS:
        return list(dict.fromkeys(_fit(name) for name in names))
    kept = names[: MAX_TAGS - 1]
    more = f"+{len(names) - len(kept)} more tables"
    return list(dict.fromkeys([*(_fit(name) for name in kept), more]))
