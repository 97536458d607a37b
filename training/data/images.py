"""The one image decoder, shared by training, prediction and the GUI's thumbnails.

Every image becomes an 8-bit RGB array the same way wherever it is read:

- EXIF orientation is applied (phone photos come out upright);
- 16-bit and 32-bit grayscale is scaled to 8 bits, not clipped to white;
- transparency (RGBA, LA, palettes with a transparent colour) is composited on a
  fixed white background, so a transparent pixel always looks the same;
- CMYK, palette, YCbCr and other modes are converted to RGB;
- animated GIF/WebP/TIFF: the first frame;
- large JPEGs are decoded at a reduced scale (``Image.draft``) when a small size is
  asked for, which is much cheaper than decoding them whole;
- images over ``PIL.Image.MAX_IMAGE_PIXELS`` (after any draft reduction) are refused
  with ``ImageLoadError`` instead of allocating gigabytes (decompression bombs).

Only the decoders of ``SUPPORTED_FORMATS`` are ever used, whatever the file's name or
content: Pillow otherwise picks a decoder by content, and its EPS plugin hands a PostScript
file (even one named ``x.png``) to Ghostscript, which runs it as a program. Only regular
files are opened (checked before opening): a FIFO would block ``open`` forever and a device
such as ``/dev/zero`` never ends. ``open_image`` is the one place that opens an image file.

Resizing squashes the whole image to (size, size), with no crop, as Keras's
``image_dataset_from_directory`` does by default; unlike it, Pillow's bilinear filter
widens with the scale factor, so downscaling averages pixels (area-like, no aliasing).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from training.files import file_kind

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# The Pillow decoders behind IMAGE_EXTENSIONS, and the only ones ever used. Multi-picture
# JPEGs from phones ("MPO") are opened by the JPEG decoder, so they need no entry here.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
_SUPPORTED_NAMES = "JPEG, PNG, BMP, GIF, WebP or TIFF"
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})  # the formats that implement Image.draft
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # not on Windows, where there are no FIFOs to open

# Pillow first shrinks by an integer factor (box filter), then resamples bilinearly; with a
# gap of 3 the result is indistinguishable from a full bilinear pass at a fraction of the cost.
_REDUCING_GAP = 3.0
_WHITE = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class ImageLoadError(Exception):
    """An image file could not be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike | bytes, reason: str):
        self.path = os.fsdecode(path)
        self.reason = reason
        super().__init__(f"Cannot read image {self.path}: {reason}")


def load_image(path: str | os.PathLike | bytes, size: int | None = None) -> np.ndarray:
    """Decodes one image file to a uint8 RGB array.

    Args:
        path: the image file (bytes are accepted: tf.data passes paths as bytes).
        size: if given, the image is squashed to (size, size); otherwise native size.

    Returns:
        uint8 array of shape (size, size, 3), or (height, width, 3) when size is None.

    Raises:
        ImageLoadError: the file is missing, unreadable, not an image, truncated, too
            large or otherwise cannot be decoded. The message names the file and reason.
    """
    path = os.fsdecode(path)
    if size is not None and size < 1:
        raise ValueError(f"`size` must be >= 1. Received: size={size}")
    try:
        with open_image(path) as image:
            image = _decode(image, path, size)
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR, reducing_gap=_REDUCING_GAP)
        return np.asarray(image, dtype=np.uint8)
    except ImageLoadError:
        raise
    except Exception as error:  # Pillow's plugins raise many types on corrupt input.
        raise ImageLoadError(path, _reason(path, error)) from error


def load_thumbnail(path: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """Decodes one image to fit inside (size, size), keeping its aspect ratio (previews).

    Returns:
        uint8 array of shape (height, width, 3), both at most ``size``.

    Raises:
        ImageLoadError: as ``load_image``.
    """
    path = os.fsdecode(path)
    if size < 1:
        raise ValueError(f"`size` must be >= 1. Received: size={size}")
    try:
        with open_image(path) as image:
            image = _decode(image, path, 2 * size)
        image.thumbnail((size, size), Image.BILINEAR, reducing_gap=_REDUCING_GAP)
        return np.asarray(image, dtype=np.uint8)
    except ImageLoadError:
        raise
    except Exception as error:  # Pillow's plugins raise many types on corrupt input.
        raise ImageLoadError(path, _reason(path, error)) from error


def load_images(paths: Iterable[str | os.PathLike], size: int) -> np.ndarray:
    """Decodes several images to one uint8 array (N, size, size, 3).

    Raises:
        ImageLoadError: at the first file that cannot be decoded.
    """
    arrays = [load_image(path, size) for path in paths]
    if not arrays:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(arrays)


def probe_image(path: str | os.PathLike) -> str | None:
    """A cheap header-only check (no pixel decoding): None if Pillow recognises the file as
    an image it can open, else the reason it cannot be used.

    A file that passes may still fail to decode later (e.g. a truncated JPEG).
    """
    path = os.fsdecode(path)
    try:
        with open_image(path) as image:
            width, height = image.size
            limit = Image.MAX_IMAGE_PIXELS
            # JPEGs are drafted down when decoded small, so only other formats are refused here.
            if limit is not None and width * height > limit and image.format not in _JPEG_FORMATS:
                return f"image too large ({width} x {height} pixels; the limit is {limit:,} pixels)"
    except ImageLoadError as error:
        return error.reason
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many types on corrupt input
        return _reason(path, error)
    return None


@contextmanager
def open_image(path: str | os.PathLike | bytes) -> Iterator[Image.Image]:
    """Opens an image file (header only) with the supported decoders alone.

    The file must be a regular file, checked before it is opened and again on the open
    handle, so a FIFO, a device or a link to one never blocks or streams forever. The file
    is opened non-blocking for the same reason: a file swapped for a FIFO after the check
    still opens at once, and is then refused.

    Raises:
        ImageLoadError: not a regular file, unreadable, or not an image in a supported format.
    """
    path = os.fsdecode(path)
    if not _is_regular_file(path):
        raise ImageLoadError(path, kind_reason(file_kind(path)))
    try:
        handle = open(path, "rb", opener=_open_nonblocking)
    except OSError as error:
        raise ImageLoadError(path, _reason(path, error)) from error
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ImageLoadError(path, "not a regular file (it changed while being opened)")
        try:
            image = Image.open(handle, formats=SUPPORTED_FORMATS)
        except Exception as error:  # Pillow's plugins raise many types on corrupt input.
            raise ImageLoadError(path, _reason(path, error)) from error
        with image:
            yield image


def _is_regular_file(path: str) -> bool:
    # One stat; training.files.file_kind then names what else it is, on the rare refusal.
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | _O_NONBLOCK)


def kind_reason(kind: str) -> str:
    """Why a path of this ``training.files.file_kind`` cannot be read as an image."""
    if kind == "missing":
        return "file not found"
    if kind == "unreadable":
        return "permission denied (check the file's permissions and those of its folders)"
    if kind == "folder":
        return "is a folder, not a file"
    return f"not a regular file ({kind}); only image files are read"


def _decode(image: Image.Image, path: str, size: int | None) -> Image.Image:
    """Loads the first frame (drafted when possible), upright, as RGB."""
    if size is not None:
        # Only JPEG (and MPO, its multi-picture form) implements draft; it decodes at 1/2,
        # 1/4 or 1/8 scale, never below size.
        image.draft(None, (size, size))
    width, height = image.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageLoadError(
            path, f"image too large ({width} x {height} pixels; the limit is {limit:,} pixels). "
                  "Resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if it is trusted.")
    image.load()  # the first frame; decode errors (truncation) surface here
    image = _upright(image)
    return _to_rgb(image)


def _upright(image: Image.Image) -> Image.Image:
    # A malformed EXIF block should not cost the picture: keep it as stored.
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - any malformed EXIF block: keep the picture as stored
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_gray_to_8bit(image), "L").convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError:  # e.g. LAB has no direct conversion to RGB
        return image.convert("RGBA").convert("RGB")


def _gray_to_8bit(image: Image.Image) -> np.ndarray:
    """Scales high-bit-depth grayscale to 0-255 instead of clipping it.

    16-bit modes divide by 257 (65535 -> 255). Mode "I" (32-bit, which Pillow may use
    for 16-bit PNGs) is treated as 16-bit when it holds values over 255, else as 8-bit.
    Float images in [0, 1] are scaled by 255.
    """
    pixels = np.asarray(image).astype(np.float64)
    high = float(pixels.max()) if pixels.size else 0.0
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = pixels / 257.0
    elif image.mode == "F" and high <= 1.0:
        pixels = pixels * 255.0
    elif high > 65535.0:
        pixels = pixels * (255.0 / high)
    elif high > 255.0:
        pixels = pixels / 257.0
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _reason(path: str, error: Exception) -> str:
    """A short human reason for a decode failure."""
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, PermissionError):
        return "permission denied (check the file's permissions)"
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(error, Image.DecompressionBombError):
        return f"image too large ({error}). Resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if it is trusted."
    try:
        empty = Path(path).stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        return "empty file (0 bytes)"
    if isinstance(error, UnidentifiedImageError):
        return f"not an image, or not one of the supported formats ({_SUPPORTED_NAMES})"
    text = str(error)
    if "truncated" in text.lower():
        return f"truncated or incomplete image file ({text})"
    return f"cannot decode ({type(error).__name__}: {text})" if text else f"cannot decode ({type(error).__name__})"

