"""The defaults the settings, the agent and the engine share, named once."""

from __future__ import annotations

from typing import Literal, get_args

ProposerName = Literal["offline", "openai"]
"""Who proposes a change: the built-in offline proposer, or a model behind an OpenAI API."""
PROPOSERS: tuple[ProposerName, ...] = get_args(ProposerName)
OFFLINE: ProposerName = "offline"
"""The proposer a profile uses unless it names another: it needs no key and no network."""

DEFAULT_MODEL = "gpt-4o"
DEFAULT_TOKEN_TIMEOUT = "24h"
"""How long a review waits for a decision unless the settings or the request say otherwise."""
DEFAULT_MAX_ROWS = 50
"""The most rows one proposal may change, unless a profile says otherwise."""
