"""Classifies images with the model in this folder; prints the top class of each.

    python predict.py IMAGE [IMAGE ...]

    photo.jpg: daisy 97.3%

Needs Python 3.10+, numpy, Pillow and this format's runtime (see load_model below and
model_card.md); nothing else. The class names come from labels.json (labels.txt holds the
same names, one a line, for people).

Images are decoded as the app decoded them for training: the first frame, turned upright
(EXIF), transparency composited on white, RGB, squashed to IMAGE_SIZE x IMAGE_SIZE with a
bilinear filter. The model takes them as float32 values 0-255 (NHWC) and does its own
scaling inside.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
IMAGE_SIZE = 0  # set at export: the model's input height and width
# Only these decoders are used, whatever a file's name says.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")


# --- runtime ---
def load_model(folder: Path):
    """Returns a function: float32 images (1, size, size, 3) -> probabilities (1, classes)."""
    raise NotImplementedError("replaced at export by the format's runtime")
# --- end runtime ---


def load_labels(folder: Path) -> list[str]:
    path = folder / "labels.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    with open(folder / "labels.txt", encoding="utf-8", newline="") as handle:
        return [line for line in handle.read().split("\n") if line]


def load_image(path: str, size: int) -> np.ndarray:
    """uint8 (size, size, 3), decoded as in training."""
    if not os.path.isfile(path):
        raise OSError("not a file")
    with Image.open(path, formats=IMAGE_FORMATS) as image:
        image.draft(None, (size, size))  # JPEG: decode at a reduced scale when that is enough
        image.load()
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 - a malformed EXIF block: keep the picture as stored
            pass
        image = to_rgb(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(gray_to_8bit(image), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError:  # e.g. LAB has no direct conversion to RGB
        return image.convert("RGBA").convert("RGB")


def gray_to_8bit(image: Image.Image) -> np.ndarray:
    """16- and 32-bit grayscale scaled to 0-255 (not clipped to white)."""
    pixels = np.asarray(image).astype(np.float64)
    high = float(pixels.max()) if pixels.size else 0.0
    if image.mode.startswith("I;16"):
        pixels = pixels / 257.0
    elif image.mode == "F" and high <= 1.0:
        pixels = pixels * 255.0
    elif high > 65535.0:
        pixels = pixels * (255.0 / high)
    elif high > 255.0:
        pixels = pixels / 257.0
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    classes = load_labels(HERE)
    try:
        predict = load_model(HERE)
    except ImportError as error:
        print(f"error: the runtime for this model is not installed ({error}). "
              "See model_card.md for what to install.", file=sys.stderr)
        return 2
    failed = 0
    for path in argv:
        try:
            image = load_image(path, IMAGE_SIZE)
        except Exception as error:  # noqa: BLE001 - Pillow raises many types on bad files
            failed += 1
            print(f"{path}: skipped ({type(error).__name__}: {error})")
            continue
        probabilities = np.asarray(predict(image[np.newaxis].astype(np.float32)))[0]
        top = int(np.argmax(probabilities))
        print(f"{path}: {classes[top]} {probabilities[top]:.1%}")
    return 1 if failed == len(argv) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
