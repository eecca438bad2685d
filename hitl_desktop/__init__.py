"""hitl-desktop: a desktop approval console for AI agents that write to a database."""

__version__ = "0.1.0"
