"""`hitl-desktop` and `python -m hitl_desktop`: start the approval console (`ui.app`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Start the console. Without a display, say how to get one before Qt is even imported.

    ``--self-test`` checks the installation instead (offscreen; see `selftest`), and
    ``--startup-probe`` starts the console, reports when its window is shown and quits
    (the packaging scripts time the start with it).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if "--self-test" in args:
        from .selftest import main as self_test

        return self_test(args)
    if "--startup-probe" in args:
        from .selftest import startup_probe

        return startup_probe(args)
    from .config import process_environment
    from .ui.display import display_problem

    if not {"-h", "--help"} & set(args):
        problem = display_problem(process_environment())
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    from .ui.app import main as run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
