"""Shared pytest setup: Qt renders offscreen (no display needed).

Set before anything imports Qt; the engine tests never import Qt at all.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
