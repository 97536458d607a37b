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


def display_problem(environ: dict[str, str] | None = None, platform: str | None = None) -> str:
    """Why Qt cannot open a window here, or "".

    On Linux, Qt with no display to talk to aborts the process with a core dump, so this
    is checked before Qt is imported. ``QT_QPA_PLATFORM`` may name a platform that needs no
    display (offscreen, vnc, eglfs, ...); it may also list fallbacks ("wayland;xcb").
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return ""
    has_x11 = bool(environ.get("DISPLAY"))
    has_wayland = bool(environ.get("WAYLAND_DISPLAY"))
    requested = [name.strip().split(":")[0] for name in environ.get("QT_QPA_PLATFORM", "").split(";")]
    requested = [name for name in requested if name]
    if not requested:
        usable = has_x11 or has_wayland
    else:
        usable = any((has_x11 if name == "xcb" else has_wayland if name.startswith("wayland") else True)
                     for name in requested)
    if usable:
        return ""
    missing = ("neither DISPLAY nor WAYLAND_DISPLAY is set" if not requested else
               f"QT_QPA_PLATFORM={environ['QT_QPA_PLATFORM']} needs a display that is not set")
    return (f"the desktop app needs a display, and none was found ({missing}). Use the command "
            "line instead (python main.py train ...; see python main.py --help), or run the app "
            "under a virtual display: xvfb-run python main.py gui")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    problem = display_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Finetune Studio")
    app.setOrganizationName("FinetuneStudio")
    from gui.plots import configure_pyqtgraph

    configure_pyqtgraph()
    from gui.window import MainWindow
    from training.api import default_config

    # Without --config the last session's settings come back; --config and --data win.
    window = MainWindow(default_config() if args.config else None,
                        prewarm=os.environ.get("FINETUNE_STUDIO_PREWARM", "1") != "0")
    if args.config:
        window.load_config_file(args.config)
    if args.data:
        window.data_panel.set_folder(_absolute(args.data))
    window.show()
    QTimer.singleShot(0, lambda: _on_shown(window))
    code = app.exec()
    from gui import engine_calls

    engine_calls.shutdown()
    return code


def _absolute(path: str) -> str:
    try:
        return os.path.abspath(path)
    except OSError:  # the current folder was deleted: the data panel reports the path as missing
        return path


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
