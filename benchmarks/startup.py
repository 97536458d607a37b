"""Start-up times: `python main.py config --default` and the desktop app's window.

    .venv/bin/python benchmarks/startup.py [--repeats 7] [--importtime]

Each figure is the median of ``--repeats`` launches of a fresh Python (a subprocess), timed
from launch by this script, after one uncounted launch that compiles the .pyc files and
fills the disk cache (as any earlier start would have):

- ``config --default``: until the process has printed the config and exited;
- window: until the app's first event-loop turn with the window shown (offscreen;
  ``FINETUNE_STUDIO_STARTUP_PROBE=1`` makes the app print it and quit), and whether
  TensorFlow had been imported by then (it must not be).

Targets (issue 13): the window in <= 2 s, ``config --default`` in <= 1 s. ``--importtime``
adds the modules that cost most on each path (``python -X importtime``), to find what to
import lazily when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"config --default": 1.0, "window": 2.0}


def time_config_default() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "main.py", "config", "--default"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_window() -> float:
    env = dict(os.environ, FINETUNE_STUDIO_STARTUP_PROBE="1", QT_QPA_PLATFORM="offscreen")
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "main.py", "gui"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in process.stdout:
            if line.startswith("window_shown_after_s="):
                if "tensorflow_imported=True" in line:
                    raise SystemExit("TensorFlow was imported before the window showed.")
                return time.perf_counter() - started
        raise SystemExit("The window never reported that it was shown.")
    finally:
        process.wait(timeout=60)


def median_of(measure, repeats: int) -> tuple[float, list[float]]:
    measure()  # uncounted: .pyc files and the disk cache
    figures = [measure() for _ in range(repeats)]
    return statistics.median(figures), figures


def heaviest_imports(args: list[str], count: int = 8, env: dict[str, str] | None = None) -> list[tuple[float, str]]:
    """The modules with the largest cumulative import time (ms) on the path of ``args``."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT, text=True,
                            capture_output=True, env=dict(os.environ, **(env or {})))
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative) / 1000, name.rstrip()))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 launches each")
    parser.add_argument("--importtime", action="store_true", help="list the heaviest imports of each path")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 3
    measured = {"config --default": median_of(time_config_default, args.repeats),
                "window": median_of(time_window, args.repeats)}
    print(f"| start-up ({args.repeats} launches) | median | runs | target |\n|---|---|---|---|")
    missed = []
    for name, (median, figures) in measured.items():
        runs = ", ".join(f"{f:.2f}" for f in figures)
        print(f"| {name} | {median:.2f} s | {runs} | <= {TARGETS[name]:.0f} s |")
        print("RESULT " + json.dumps({"benchmark": "startup", "what": name, "median_seconds": median,
                                      "target_seconds": TARGETS[name]}), flush=True)
        if median > TARGETS[name]:
            missed.append(name)
    if args.importtime:
        paths = {"config --default": (["main.py", "config", "--default"], None),
                 "window": (["main.py", "gui"], {"FINETUNE_STUDIO_STARTUP_PROBE": "1", "QT_QPA_PLATFORM": "offscreen"})}
        for name, (command, env) in paths.items():
            print(f"\nheaviest imports, {name} (cumulative ms):")
            for ms, module in heaviest_imports(command, env=env):
                print(f"  {ms:8.1f}  {module.strip()}")
    if missed:
        print(f"\nMissed: {', '.join(missed)}.")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
