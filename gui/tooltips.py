"""Tooltips now come from the knob table (config keys) and ``gui.forms.UI_TOOLTIPS``.

Only ``gui/plots.py`` still imports ``tooltip`` from here; delete this module once it
imports it from ``gui.forms``.
"""

from __future__ import annotations

from gui.forms import tooltip

__all__ = ["tooltip"]
