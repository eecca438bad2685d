"""`hitl-desktop` and `python -m hitl_desktop`: start the approval console (`ui.app`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Start the console. Without a display, say how to get one before Qt is even imported."""
    from .config import process_environment
    from .ui.display import display_problem

    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["--self-test"]:  # runs offscreen: needs no display
        from .selftest import main as self_test

        return self_test(args[1:])
    if not {"-h", "--help"} & set(args):
        problem = display_problem(process_environment())
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    from .ui.app import main as run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
