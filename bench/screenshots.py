"""Render the console with the demo data into docs/screenshots/ (light and dark palettes).

    xvfb-run -a .venv/bin/python bench/screenshots.py      # what `make screenshots` runs

Builds a throwaway demo (its own data directory), waits for the sample requests to wait for
review, decides two of them so the All view has outcomes, and grabs the 1280×800 window:

* ``review-light.png`` / ``review-dark.png``: the Waiting view, a refund selected, its diff;
* ``all-light.png``: the All view with applied / rejected rows, an update's word diff selected;
* ``raw-json-dark.png``: the raw proposal JSON toggle;
* ``decided-light.png``: a rejected delete: the outcome, the reason, the deleted row;
* ``review-light-2x.png``: the refund again at a device pixel ratio of 2 (``QT_SCALE_FACTOR=2``);
* ``review-large-font.png``: the refund again with a large system font (14 pt).

Each variant renders in a process of its own: Qt reads the scale factor once, at start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from hitl_desktop.agent import Decision, review_from_steps
from hitl_desktop.config import Settings
from hitl_desktop.ui.app import ConsoleApp
from hitl_desktop.ui.demo import prepare_demo
from hitl_desktop.ui.records import View

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"

LARGE_FONT_PT = 14.0
"""The large system font variant's point size (Qt's default here is 9 pt)."""
VARIANTS: dict[str, dict[str, str]] = {
    "normal": {},
    "2x": {"QT_SCALE_FACTOR": "2"},
    "large-font": {},
}
"""Each variant's environment: Qt reads QT_SCALE_FACTOR when the application starts."""


def dark_palette() -> QPalette:
    p = QPalette()
    c = QPalette.ColorRole
    base, window, text = QColor("#1f2125"), QColor("#2a2c31"), QColor("#e6e7ea")
    p.setColor(c.Window, window)
    p.setColor(c.WindowText, text)
    p.setColor(c.Base, base)
    p.setColor(c.AlternateBase, QColor("#26282c"))
    p.setColor(c.ToolTipBase, window)
    p.setColor(c.ToolTipText, text)
    p.setColor(c.Text, text)
    p.setColor(c.Button, QColor("#34363c"))
    p.setColor(c.ButtonText, text)
    p.setColor(c.Highlight, QColor("#3a66e8"))
    p.setColor(c.HighlightedText, QColor("#ffffff"))
    p.setColor(c.PlaceholderText, QColor("#8b8e96"))
    p.setColor(c.Link, QColor("#74a0ff"))
    for role in (c.Text, c.WindowText, c.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6d7078"))
    return p


async def settle(app: ConsoleApp, seconds: float = 0.4) -> None:
    await app.console.idle(10)
    await asyncio.sleep(seconds)
    app.window.repaint()


async def wait_for(predicate: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise TimeoutError("the demo did not get ready")
        await asyncio.sleep(0.05)


async def shoot(app: ConsoleApp, name: str, out: Path) -> Path:
    await settle(app)
    path = out / name
    app.window.grab().save(str(path))
    print(path)
    return path


async def run(qapp: QApplication, data_dir: Path, out: Path, variant: str = "normal") -> None:
    base = Settings(data_dir=data_dir, store_url="", config_dir=data_dir / "config")
    settings = prepare_demo(base)
    app = ConsoleApp(settings, demo=True, reviewer="ana", tray=False, linger_s=0.0)
    app.window.resize(1280, 800)
    await app.start()
    try:
        model = app.model
        await wait_for(lambda: sum(r.waiting for r in model.rows()) >= 6)
        rows = {r.request: r for r in model.rows()}
        # Two decisions so the All view shows outcomes.
        for text, approve in (("Mark invoice 4854 as paid", True), ("Delete refund 12", False)):
            row = rows[text]
            assert row.token_id is not None
            review = review_from_steps(await app.engine.get_steps(row.id))
            assert review is not None
            await app.engine.decide(
                row.token_id,
                Decision(approve, "ana", None if approve else "keep it for the audit").to_json(),
                seen=review.diff_hash,
            )
        await wait_for(lambda: len(model.rows()) == 4)
        refund = rows["Refund $20 on invoice 1042"].id
        app.window.select_run(refund)
        await wait_for(lambda: app.window.review.can_decide)
        if variant != "normal":
            await shoot(app, f"review-{'light-2x' if variant == '2x' else variant}.png", out)
            return
        await shoot(app, "review-light.png", out)

        qapp.setPalette(dark_palette())
        await shoot(app, "review-dark.png", out)
        app.window.review.diff.raw_toggle.setChecked(True)
        await shoot(app, "raw-json-dark.png", out)
        app.window.review.diff.raw_toggle.setChecked(False)

        qapp.setPalette(qapp.style().standardPalette())
        app.window.set_view(View.ALL)
        email = rows["Change the email of customer 23 to jonas@schmidt.example"].id
        await wait_for(lambda: model.get(email) is not None)
        app.window.select_run(email)
        await wait_for(lambda: app.window.review.can_decide)
        await shoot(app, "all-light.png", out)

        rejected = rows["Delete refund 12"].id
        app.window.select_run(rejected)
        await wait_for(
            lambda: app.window.review.view is not None and app.window.review.view.run.id == rejected
        )
        await shoot(app, "decided-light.png", out)
    finally:
        await app.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go")
    parser.add_argument(
        "--variant",
        choices=[*VARIANTS, "all"],
        default="all",
        help="one rendering (the default: each, in a process of its own)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.variant == "all":
        failed = []
        for variant, env in VARIANTS.items():
            command = [sys.executable, __file__, "--out", str(args.out), "--variant", variant]
            if subprocess.run(command, env={**os.environ, **env}, check=False).returncode:
                failed.append(variant)
        if failed:
            print(f"the {', '.join(failed)} rendering failed (its error is above)", file=sys.stderr)
        return 1 if failed else 0
    import qasync

    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(qapp, QApplication)
    qapp.setStyle("Fusion")  # the same look on every machine the screenshots are made on
    qapp.setPalette(qapp.style().standardPalette())
    if args.variant == "large-font":
        font = qapp.font()
        font.setPointSizeF(LARGE_FONT_PT)
        qapp.setFont(font)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory(prefix="hitl-shots-") as tmp, loop:
        loop.run_until_complete(run(qapp, Path(tmp), args.out, args.variant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
