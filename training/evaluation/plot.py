"""confusion_matrix.png, drawn with Pillow (no plotting library is needed for one grid).

Rows are the true classes, columns the predicted ones, in the classes' order; each cell
holds its count, coloured by the share of its row (the recall of the diagonal cell), so a
small class's confusions show as clearly as a large class's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LOW, HIGH = np.array([247, 251, 255]), np.array([8, 48, 107])  # white to dark blue
MAX_LABEL_CHARS = 24


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL_CHARS else name[:MAX_LABEL_CHARS - 1] + "…"


def draw_confusion_matrix(matrix: list[list[int]], classes: list[str], path: Path, title: str = "") -> None:
    counts = np.asarray(matrix, dtype=np.int64)
    n = len(classes)
    cell = int(np.clip(720 // max(n, 1), 18, 64))
    font, small = _font(max(9, min(16, cell // 3))), _font(12)
    labels = [_label(c) for c in classes]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max(int(measure.textlength(label, font=small)) for label in labels) + 12
    top = label_width + 40
    left = label_width + 40
    width, height = left + n * cell + 20, top + n * cell + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), title or "Confusion matrix", fill="black", font=_font(14))
    draw.text((left, top - 18), "predicted", fill="dimgray", font=small)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    for i in range(n):
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            colour = tuple(int(v) for v in LOW + (HIGH - LOW) * shares[i, j])
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour,
                           outline="black" if i == j else (210, 210, 210))
            text = str(counts[i, j])
            ink = "white" if shares[i, j] > 0.5 else "black"
            draw.text((x + cell / 2, y + cell / 2), text, fill=ink, font=font, anchor="mm")
        draw.text((left - 6, top + i * cell + cell / 2), labels[i], fill="black", font=small, anchor="rm")
    # Column labels, written sideways.
    strip = Image.new("RGB", (label_width, n * cell), "white")
    strip_draw = ImageDraw.Draw(strip)
    for j, name in enumerate(labels):
        strip_draw.text((6, j * cell + cell / 2), name, fill="black", font=small, anchor="lm")
    image.paste(strip.rotate(90, expand=True), (left, top - 22 - label_width))
    side = Image.new("RGB", (120, 14), "white")
    ImageDraw.Draw(side).text((0, 0), "true", fill="dimgray", font=small)
    image.paste(side, (8, top - 18))
    image.save(path, format="PNG")
