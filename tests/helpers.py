"""Shared test helpers: tiny learnable image folders and broken image files.

    from tests.helpers import make_tiny_dataset, write_broken_files

    root = make_tiny_dataset(tmp_path)            # tmp_path/data/{circle,square,triangle}/*.png
    broken = write_broken_files(root / "circle")  # {"zero_byte": Path, "text_as_png": ..., ...}
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.sample import make_shapes_dataset


def make_tiny_dataset(tmp_path: Path, classes: int = 3, per_class: int = 30, size: int = 64, *,
                      easy: bool = True, seed: int = 0, fmt: str = "png",
                      name: str = "data") -> Path:
    """A class-per-folder data set under ``tmp_path/name``; returns that folder.

    With ``easy=True`` (the default) each class has a typical hue besides its shape,
    so a small from-scratch network reaches >= 0.9 validation accuracy in a few epochs.
    Classes are, in order: circle, square, triangle, star, cross.
    """
    return make_shapes_dataset(Path(tmp_path) / name, classes=classes, per_class=per_class,
                               size=size, seed=seed, fmt=fmt, easy=easy)


def jpeg_bytes(size: int = 32, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid, small JPEG with some texture (so truncating it loses real data)."""
    rng = np.random.default_rng(0)
    pixels = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_truncated_jpeg(path: Path, size: int = 64) -> Path:
    """A JPEG whose header is intact (``Image.open`` succeeds) but whose data stops halfway,
    so only a full decode fails."""
    data = jpeg_bytes(size)
    path.write_bytes(data[: len(data) // 2])
    return path


def write_broken_files(folder: Path) -> dict[str, Path]:
    """Writes three broken files into ``folder`` and returns them by kind:

    - ``zero_byte``: ``empty.jpg``, an empty file;
    - ``text_as_png``: ``notes.png``, text with an image extension;
    - ``truncated_jpeg``: ``truncated.jpg``, passes a header check, fails to decode.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zero = folder / "empty.jpg"
    zero.write_bytes(b"")
    text = folder / "notes.png"
    text.write_text("this is not an image\n", encoding="utf-8")
    truncated = write_truncated_jpeg(folder / "truncated.jpg")
    return {"zero_byte": zero, "text_as_png": text, "truncated_jpeg": truncated}
