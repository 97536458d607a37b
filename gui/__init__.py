"""The desktop app (PySide6 + pyqtgraph). Start it with ``python main.py gui``."""

from gui.qt_fixes import make_singletons_immortal

make_singletons_immortal()
