"""Opening model files from elsewhere, safely.

A ``.keras`` file is a zip holding ``config.json`` (which classes to build) and the weights.
Before Keras deserializes anything, ``load_model_safely`` checks the archive itself: only
``.keras`` files, a size cap (on the file and on what it unpacks to), and every class named
in its config must be a Keras built-in or one of this app's registered classes; ``Lambda``
layers and other code-carrying wrappers are refused. Then Keras loads it with
``safe_mode=True`` (never with unsafe deserialization enabled). Keras >= 3.13.2 is pinned:
earlier versions had model-loading vulnerabilities.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

# The largest keras.applications backbone (ConvNeXtXLarge) with a head and optimizer state
# is about 4 GB; nothing legitimate here is bigger.
MAX_MODEL_BYTES = 4 * 1024**3
MAX_CONFIG_BYTES = 64 * 1024**2

# Classes that carry Python code or reach outside the file.
FORBIDDEN_CLASSES = frozenset({"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer",
                               "FlaxLayer", "function", "TFLayer"})
ALLOWED_MODULE_PREFIXES = ("keras.", "keras")
APP_PACKAGE = "finetune_studio>"


class UnsafeModelError(ValueError):
    """The file was refused; the message says why and what to do."""


def check_model_file(path: str | Path, *, max_bytes: int = MAX_MODEL_BYTES) -> dict[str, Any]:
    """Checks a ``.keras`` file without building anything; returns its config.

    Raises:
        UnsafeModelError: not a ``.keras`` file, too large, or a class outside the allow-list.
    """
    path = Path(path).expanduser()
    if path.suffix != ".keras":
        raise UnsafeModelError(
            f"{path}: only .keras model files are accepted (got {path.suffix or 'no extension'}). "
            "Legacy .h5 models and SavedModel folders can run code when loaded; re-save the model "
            "with `model.save('model.keras')` in the program that made it.")
    if not path.is_file():
        raise UnsafeModelError(f"{path} does not exist or is not a file.")
    size = path.stat().st_size
    if size > max_bytes:
        raise UnsafeModelError(f"{path} is {size / 1e9:.1f} GB, over the {max_bytes / 1e9:.1f} GB "
                               "limit for model files; it was not opened.")
    if not zipfile.is_zipfile(path):
        raise UnsafeModelError(f"{path} is not a .keras archive (not a zip file); it may be "
                               "damaged or mislabelled.")
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_bytes:
            raise UnsafeModelError(f"{path} would unpack to {unpacked / 1e9:.1f} GB, over the "
                                   f"{max_bytes / 1e9:.1f} GB limit; it was not opened.")
        try:
            info = archive.getinfo("config.json")
        except KeyError:
            raise UnsafeModelError(f"{path} has no config.json: it is not a Keras model file.") from None
        if info.file_size > MAX_CONFIG_BYTES:
            raise UnsafeModelError(f"{path}: its config.json is implausibly large; not opened.")
        try:
            config = json.loads(archive.read(info))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UnsafeModelError(f"{path}: its config.json is not valid JSON ({error}).") from None
    for item in _class_entries(config):
        _check_class(path, item)
    return config


def load_model_safely(path: str | Path, *, max_bytes: int = MAX_MODEL_BYTES):
    """Checks the file (see ``check_model_file``), then loads it with ``safe_mode=True``."""
    import keras

    import models.preprocess  # noqa: F401 - registers this app's classes before loading

    check_model_file(path, max_bytes=max_bytes)
    try:
        return keras.saving.load_model(Path(path).expanduser(), compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a bad file
        raise UnsafeModelError(f"{path} could not be loaded as a Keras model: {error}") from error


def _class_entries(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _class_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _class_entries(value)


def _check_class(path: Path, item: dict[str, Any]) -> None:
    name = str(item.get("class_name"))
    registered = item.get("registered_name")
    module = item.get("module")
    if name in FORBIDDEN_CLASSES or (isinstance(registered, str) and registered.split(">")[-1] in FORBIDDEN_CLASSES):
        raise UnsafeModelError(
            f"{path} contains a {name} layer, which runs Python code stored in the file; it was "
            "refused. Rebuild the model without Lambda layers (use a registered custom layer).")
    if isinstance(registered, str) and registered and registered != name:
        if registered.startswith(APP_PACKAGE):
            return
        raise UnsafeModelError(
            f"{path} needs the custom class {registered!r}, which is not on this app's allow-list "
            "(Keras built-ins and this app's own layers); it was refused.")
    if module is None or name == "__keras_tensor__":
        return
    if not str(module).startswith(ALLOWED_MODULE_PREFIXES):
        raise UnsafeModelError(
            f"{path} needs the class {name!r} from module {module!r}, which is not on this app's "
            "allow-list (Keras built-ins and this app's own layers); it was refused.")
