"""Each export folder's ``predict.py``: the template with the format's runtime pasted in.

The templates are ordinary Python files (``templates/``), linted like the rest of the code;
the script is their text with the input size filled in, so it imports nothing of this app.
"""

from __future__ import annotations

from importlib import resources

_TEMPLATES = "training.export.templates"
_RUNTIME_START, _RUNTIME_END = "# --- runtime ---\n", "# --- end runtime ---\n"
_PASTE = "# --- paste ---\n"
_SIZE_LINE = "IMAGE_SIZE = 0  # set at export: the model's input height and width\n"


def predict_script(fmt: str, image_size: int) -> str:
    """The text of ``predict.py`` for an export of format ``fmt`` taking ``image_size`` px."""
    template = _read("predict.py")
    runtime = _read(f"runtime_{fmt}.py")
    head, rest = template.split(_RUNTIME_START)
    _, tail = rest.split(_RUNTIME_END)
    body = runtime.split(_PASTE)[1]
    if template.count(_SIZE_LINE) != 1:
        raise AssertionError("templates/predict.py lost its IMAGE_SIZE line")
    script = head + body + tail
    return script.replace(_SIZE_LINE, f"IMAGE_SIZE = {int(image_size)}  # the model's input height and width\n")


def _read(name: str) -> str:
    return resources.files(_TEMPLATES).joinpath(name).read_text("utf-8")
