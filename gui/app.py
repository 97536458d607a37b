"""``python main.py gui [--data DIR] [--config FILE]``: starts the desktop app.

Nothing here imports TensorFlow: the window appears first, and everything that needs
Keras runs in helper processes started after it is on screen.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_LAUNCHED = time.perf_counter()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="main.py gui", description="Finetune Studio desktop app.")
    parser.add_argument("--data", metavar="DIR", help="folder of images, one subfolder per class")
    parser.add_argument("--config", metavar="FILE", help="a JSON config file (as the CLI reads)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Finetune Studio")
    app.setOrganizationName("FinetuneStudio")
    from gui.plots import configure_pyqtgraph

    configure_pyqtgraph()
    from gui.window import MainWindow

    window = MainWindow(prewarm=os.environ.get("FINETUNE_STUDIO_PREWARM", "1") != "0")
    if args.config:
        window.load_config_file(args.config)
    if args.data:
        window.data_panel.set_folder(os.path.abspath(args.data))
    window.show()
    QTimer.singleShot(0, lambda: _on_shown(window))
    code = app.exec()
    from gui import engine_calls

    engine_calls.shutdown()
    return code


def _on_shown(window) -> None:
    # FINETUNE_STUDIO_STARTUP_PROBE=1 (benchmarks/gui_responsiveness.py): report the time
    # from launch to the first event-loop turn with the window shown, then quit.
    if os.environ.get("FINETUNE_STUDIO_STARTUP_PROBE") == "1":
        window.repaint()
        print(f"window_shown_after_s={time.perf_counter() - _LAUNCHED:.3f} "
              f"tensorflow_imported={'tensorflow' in sys.modules}", flush=True)
        window.close()
        return
    window.after_shown()
