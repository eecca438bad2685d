"""`hitl-desktop` and `python -m hitl_desktop`: the console entry point (a placeholder)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Start the console; until the console issue lands, say so and point at the CLI."""
    parser = argparse.ArgumentParser(prog="hitl-desktop")
    parser.add_argument("--demo", action="store_true", help="start with demo data")
    parser.parse_args(argv)
    print(
        "hitl-desktop: the console is not built yet (it arrives with the console issue); "
        "the engine and the `hitl` CLI work today."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
