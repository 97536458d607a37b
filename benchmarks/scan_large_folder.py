"""How long scanning a big folder takes, and how much memory it needs.

    .venv/bin/python benchmarks/scan_large_folder.py [--files 100000] [--classes 10]

Writes FILES tiny PNGs (plus some junk the scan must ignore or skip) into a temporary
class-per-folder tree, then times ``scan_folder`` with and without the per-file header
check, and reports the peak Python memory it allocated (tracemalloc).
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from PIL import Image

from training.data.scan import scan_folder


def build_tree(root: Path, files: int, classes: int) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    png = buffer.getvalue()
    for c in range(classes):
        folder = root / f"class_{c:02d}"
        (folder / "nested").mkdir(parents=True)
        (folder / ".DS_Store").write_bytes(b"junk")
        (folder / "broken.jpg").write_bytes(b"")
        for i in range(files // classes):
            target = folder / ("nested" if i % 2 else ".") / f"img_{i:06d}.png"
            target.write_bytes(png)


def measure(root: Path, verify: bool) -> tuple[float, float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    result = scan_folder(root, verify=verify)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 1e6, len(result.files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 files")
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    if args.quick:
        args.files = 10_000
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        build_tree(root, args.files, args.classes)
        print(f"wrote {args.files} files in {time.perf_counter() - started:.1f} s")
        for verify in (False, True):
            seconds, peak_mb, found = measure(root, verify)
            print(f"scan verify={verify!s:5}: {seconds:6.2f} s, {found} images "
                  f"({found / seconds:,.0f} files/s), peak Python memory {peak_mb:.0f} MB "
                  f"({peak_mb * 1e6 / found:.0f} bytes per file)")
            print("RESULT " + json.dumps({"benchmark": "scan", "files": found, "verify": verify,
                                          "seconds": seconds, "peak_mb": peak_mb}), flush=True)


if __name__ == "__main__":
    main()
