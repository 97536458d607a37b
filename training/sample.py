"""The built-in sample data set: coloured shapes, one folder per class.

It gives the app something to train on out of the box and gives the tests a small
data set that a model can really learn. Images are drawn with Pillow (no TensorFlow),
deterministically from a seed: random colours, sizes, positions, rotations,
backgrounds and light noise, so that telling the shapes apart takes a few epochs
rather than one.

``easy=True`` draws every class in its own hue (with jitter) on a dark grey background,
so even a tiny from-scratch network separates 3 classes x 30 images within a few epochs;
the tests use it. The app's built-in sample uses random backgrounds and gives nine
shapes in ten their class's hue (``colour_hint``): colour gets a small network far, the
shape has to do the rest.
"""

from __future__ import annotations

import colorsys
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from training.config import BUILTIN_SAMPLE

SHAPES = ("circle", "square", "triangle", "star", "cross")

# The app's built-in sample: 5 classes x 80 images at 96 px (about 2 MB of PNG). Nine
# shapes in ten take their class's hue: a from-scratch SmallCNN gets past 0.9 validation
# accuracy within a few epochs on colour, and the last few per cent need the shape
# (measured: shape alone, 320 training images, SmallCNN reached only ~0.65 in 10 epochs).
BUILTIN_CLASSES = 5
BUILTIN_PER_CLASS = 80
BUILTIN_SIZE = 96
BUILTIN_SEED = 20240
BUILTIN_COLOUR_HINT = 0.9

# Shapes are drawn at this multiple of the final size and downsampled: smooth edges.
_SUPERSAMPLE = 3
_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "gif": "GIF",
            "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}


def make_shapes_dataset(root: str | os.PathLike, *, classes: int = 5, per_class: int = 60,
                        size: int = 64, seed: int = 0, fmt: str = "png",
                        easy: bool = False, colour_hint: float = 0.0) -> Path:
    """Writes ``root/<shape>/<shape>_NNN.<fmt>`` images and returns ``root``.

    Args:
        root: folder to create (it may exist; files are overwritten).
        classes: how many of circle, square, triangle, star, cross (in that order).
        per_class: images per class.
        size: width and height in pixels.
        seed: the same seed always gives the same images.
        fmt: file format/extension: png, jpg, bmp, gif, webp or tiff.
        easy: every shape in its class's typical hue (jittered), bright on a dark grey
            background: colour alone tells the classes apart.
        colour_hint: (when not easy) the probability that a shape takes its class's hue
            (jittered) instead of a random one; backgrounds stay random.

    Raises:
        ValueError: an argument out of range.
    """
    if not 1 <= classes <= len(SHAPES):
        raise ValueError(f"`classes` must be in [1, {len(SHAPES)}]. Received: classes={classes}")
    if per_class < 1:
        raise ValueError(f"`per_class` must be >= 1. Received: per_class={per_class}")
    if size < 8:
        raise ValueError(f"`size` must be >= 8. Received: size={size}")
    if not 0.0 <= colour_hint <= 1.0:
        raise ValueError(f"`colour_hint` must be in [0, 1]. Received: colour_hint={colour_hint}")
    if fmt.lower() not in _FORMATS:
        raise ValueError(f"`fmt` must be one of {', '.join(_FORMATS)}. Received: fmt={fmt!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for index, shape in enumerate(SHAPES[:classes]):
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        hue = index / classes
        for i in range(per_class):
            if easy:
                image = draw_shape(shape, size, rng, class_hue=hue)
            else:
                hinted = rng.random() < colour_hint
                image = draw_shape(shape, size, rng, hint_hue=hue if hinted else None)
            image.save(folder / f"{shape}_{i:03d}.{fmt.lower()}", _FORMATS[fmt.lower()])
    return root


def draw_shape(shape: str, size: int, rng: np.random.Generator,
               class_hue: float | None = None,
               hint_hue: float | None = None) -> Image.Image:
    """One RGB image of ``shape`` with random colour, scale, position and rotation.

    ``class_hue``: the easy style (that hue, on dark grey). ``hint_hue``: the shape takes
    that hue but keeps the random brightness and background of the normal style.
    """
    big = size * _SUPERSAMPLE
    background, foreground = _colours(rng, class_hue, hint_hue)
    image = Image.new("RGB", (big, big), background)
    # Shapes fill 45-80 % of the frame and stay inside it whatever the rotation.
    radius = big * rng.uniform(0.22, 0.40)
    margin = radius * 1.05
    centre = (rng.uniform(margin, big - margin), rng.uniform(margin, big - margin))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        # A slight ellipse: circles should not be pixel-perfect either.
        rx, ry = radius * rng.uniform(0.85, 1.0), radius * rng.uniform(0.85, 1.0)
        draw.ellipse((centre[0] - rx, centre[1] - ry, centre[0] + rx, centre[1] + ry), fill=foreground)
    else:
        draw.polygon(_polygon(shape, centre, radius, angle), fill=foreground)
    image = image.resize((size, size), Image.LANCZOS)
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0.0, 6.0, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _colours(rng: np.random.Generator, class_hue: float | None, hint_hue: float | None) -> tuple[tuple, tuple]:
    """A background and a foreground colour that differ clearly in brightness."""
    if class_hue is not None:
        # Easy: a bright, saturated shape of the class's hue on a dark, nearly grey background.
        hue = (class_hue + rng.uniform(-0.04, 0.04)) % 1.0
        foreground = colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
        background = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.1), rng.uniform(0.05, 0.35))
        return _to_bytes(background), _to_bytes(foreground)
    dark_shape = rng.random() < 0.3
    value = rng.uniform(0.25, 0.45) if dark_shape else rng.uniform(0.75, 1.0)
    if hint_hue is not None:
        hue = (hint_hue + rng.uniform(-0.05, 0.05)) % 1.0
    else:
        hue = rng.uniform(0.0, 1.0)
    foreground = colorsys.hsv_to_rgb(hue, rng.uniform(0.4, 1.0), value)
    # Muted backgrounds of any hue, on the other side of the brightness scale.
    back_value = rng.uniform(0.75, 0.95) if dark_shape else rng.uniform(0.05, 0.4)
    background = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.35), back_value)
    return _to_bytes(background), _to_bytes(foreground)


def _to_bytes(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(int(round(c * 255)) for c in rgb)


def _polygon(shape: str, centre: tuple[float, float], radius: float,
             angle: float) -> list[tuple[float, float]]:
    """Vertices of a shape of the given circumradius, rotated by ``angle`` radians."""
    if shape == "square":
        points = [(math.cos(a), math.sin(a)) for a in np.arange(4) * math.pi / 2 + math.pi / 4]
    elif shape == "triangle":
        points = [(math.cos(a), math.sin(a)) for a in np.arange(3) * 2 * math.pi / 3]
    elif shape == "star":
        points = [((1.0 if k % 2 == 0 else 0.42) * math.cos(a), (1.0 if k % 2 == 0 else 0.42) * math.sin(a))
                  for k, a in enumerate(np.arange(10) * math.pi / 5)]
    elif shape == "cross":
        w = 0.33  # half the arm width, relative to the arm length
        points = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1),
                  (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)]
    else:
        raise ValueError(f"Unknown shape {shape!r}. Known shapes: {', '.join(SHAPES)}.")
    cos, sin = math.cos(angle), math.sin(angle)
    return [(centre[0] + radius * (x * cos - y * sin), centre[1] + radius * (x * sin + y * cos))
            for x, y in points]


def sample_home() -> Path:
    """Where generated data lives: ``$FINETUNE_STUDIO_HOME`` or ``~/.cache/finetune-studio``."""
    home = os.environ.get("FINETUNE_STUDIO_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "finetune-studio"


def ensure_builtin_sample() -> Path:
    """The built-in shapes data set, generated on first use.

    It is built in a temporary folder beside its final place and renamed into place,
    so an interrupted generation or two processes generating at once never leave a
    half-written data set behind.
    """
    target = sample_home() / "samples" / "shapes"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".shapes-", dir=target.parent))
    try:
        make_shapes_dataset(staging, classes=BUILTIN_CLASSES, per_class=BUILTIN_PER_CLASS,
                            size=BUILTIN_SIZE, seed=BUILTIN_SEED, colour_hint=BUILTIN_COLOUR_HINT)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the data set need not be
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # not a lost race with another process: a real error
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_data_dir(data_dir: str | os.PathLike) -> Path:
    """The folder behind ``data.dir``: ``builtin:shapes`` is generated on first use."""
    if str(data_dir) == BUILTIN_SAMPLE:
        return ensure_builtin_sample()
    if str(data_dir).startswith("builtin:"):
        from training.data import DataError  # data imports this module

        raise DataError(f"Unknown built-in data set {str(data_dir)!r}. The only one is {BUILTIN_SAMPLE!r}.")
    return Path(data_dir).expanduser()
