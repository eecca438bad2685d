import os

# Qt needs a platform plugin; tests never have a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
