"""Checking a reviewer's edits against the target before the decision is sent.

An approval with edits that would not apply (a value of the wrong type, a key that already
exists, a row that is gone) must be refused while the run still waits, not discovered by the
apply step after the token is used up. `edit_problems` runs the same checks the apply step runs
(`with_edits`, then `validate` against the current rows); it takes the catalogue and a reader,
so whoever opens the target decides how.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ._bind import Bind
from .apply import with_edits
from .catalogue import Catalogue
from .errors import Problem, ProposalInvalid
from .proposal import Proposal
from .review import Edit, Review
from .validation import DEFAULT_MAX_ROWS, validate


def edit_problems(
    review: Review,
    edits: Sequence[Edit],
    catalogue: Catalogue,
    reader: Bind,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[Problem]:
    """What is wrong with approving *review*'s proposal with *edits*, now; empty when nothing."""
    try:
        edited = with_edits(Proposal.model_validate(review.proposal), edits)
        validate(edited, catalogue, reader, max_rows=max_rows)
    except ProposalInvalid as exc:
        return list(exc.problems)
    return []


async def check_decision_edits(
    review: Review,
    edits: Sequence[Edit],
    catalogue: Catalogue,
    reader: Bind,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[Problem]:
    """`edit_problems` off the event loop (the reader is a sync engine)."""
    if not edits:
        return []
    return await asyncio.to_thread(
        edit_problems, review, edits, catalogue, reader, max_rows=max_rows
    )
