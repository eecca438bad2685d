"""Small builders shared by the agent tests."""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from hitl_desktop.agent import Proposal

MakeDb = Callable[..., sa.Engine]


def proposal(*changes: dict[str, Any]) -> Proposal:
    return Proposal.model_validate({"summary": "s", "rationale": "r", "changes": list(changes)})
