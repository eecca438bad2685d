"""The frozen app's entry script (PyInstaller runs this): `hitl-desktop [--self-test]`.

`--self-test` and `--startup-probe` are dispatched here too, before the console's display
check, so that the bundle answers them whatever `hitl_desktop.__main__` already handles.
"""

import sys


def run() -> int:
    args = sys.argv[1:]
    if "--self-test" in args:
        from hitl_desktop.selftest import main as self_test

        return self_test(args)
    if "--startup-probe" in args:
        from hitl_desktop.selftest import startup_probe

        return startup_probe(args)
    from hitl_desktop.__main__ import main

    return main(args)


if __name__ == "__main__":
    sys.exit(run())
