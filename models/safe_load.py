"""Opening model files from elsewhere, safely.

A ``.keras`` file is a zip holding ``config.json`` (which classes to build), ``metadata.json``,
the weights (``model.weights.h5``) and, for some layers, ``assets/``. Before Keras reads
anything, ``check_model_file`` checks the archive itself, then ``load_model_safely`` lets
Keras load it with ``safe_mode=True`` (never with unsafe deserialization enabled). Keras
>= 3.13.2 is pinned: earlier versions had model-loading vulnerabilities.

What the check bounds, and why these limits:

- The file: a regular file (a FIFO would block, a folder is not a model), ``.keras`` only,
  at most ``MAX_MODEL_BYTES``. The largest model this app trains (ConvNeXtXLarge, 348 M
  parameters, with the Adam state saved beside the weights) is about 4.2 GB.
- What it unpacks to. Keras reads the weights member whole into memory (when the machine
  has room for the model's weights) and, when the archive has more than three members,
  extracts every member into a temporary folder, so what the members *declare* is what
  costs memory and disk. zipfile never returns more
  than a member declares (it stops there and then fails the CRC check), so bounding the
  declared sizes bounds the real cost. Keras writes members uncompressed (ratio 1);
  re-zipped, float weights shrink only 1.1-1.2x and ``config.json`` 10-40x (measured on
  SmallCNN, MobileNetV2, EfficientNetB0, NASNetMobile and ConvNeXtTiny classifiers). A
  member over ``EXPANSION_FLOOR_BYTES`` that claims more than ``MAX_EXPANSION`` times its
  stored size, or an archive that claims that much in total, is a decompression bomb:
  such a file can cost at most ``MAX_EXPANSION`` times its own size, not gigabytes from
  a few megabytes. Keras's own guard starts at 256 MiB a member, which let a 2.6 MB file
  unpack 1 GB into the temporary folder in many smaller members.
- The members: at most ``MAX_MEMBERS``; relative names without ``..``, empty parts,
  backslashes or control characters; no name twice; stored or deflated only, not
  encrypted; compressed sizes that do not add up to more than the file (overlapping
  members, another bomb technique). Every member is read once and its CRC checked, so a
  damaged file is reported as damaged instead of as a zipfile traceback or a Keras error,
  and weights Keras would read in pieces (its fallback when reading them whole fails)
  cannot load with an unnoticed bad byte.
- ``config.json``: at most ``MAX_CONFIG_BYTES`` and ``MAX_CONFIG_DEPTH`` levels deep (real
  configs: 14-15 levels, 0.02-0.8 MB for the backbones measured above; JSON nested
  100,000 deep would raise ``RecursionError``).
  Every class it names must be a Keras built-in (from ``keras`` or ``keras.*``) or one of
  this app's registered classes with the module it really lives in; ``Lambda`` layers and
  other code-carrying wrappers are refused. The classifiers this app builds now hold Keras
  built-ins only (plain Keras opens them); the one registered class, the legacy
  ``models.preprocess.Preprocess`` layer, is still allowed for files saved before that.

The check and Keras open the file separately: a process that rewrites the file between
the two is not guarded against (it could replace anything else in the folder as well).
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

MAX_MODEL_BYTES = 4 * 1024**3
# Measured configs of this app's classifiers: at most 0.8 MB (NASNetMobile), 15 levels deep.
MAX_CONFIG_BYTES = 16 * 1024**2
MAX_CONFIG_DEPTH = 100
# Keras writes 3 members (config, metadata, weights) plus one file per asset.
MAX_MEMBERS = 256
MAX_MEMBER_NAME_CHARS = 512
MAX_DIRECTORY_BYTES = 16 * 1024**2
MAX_EXPANSION = 100
EXPANSION_FLOOR_BYTES = 4 * 1024**2
_READ_CHUNK = 1024**2

# Classes that carry Python code or reach outside the file.
FORBIDDEN_CLASSES = frozenset({"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer",
                               "FlaxLayer", "function", "TFLayer"})
APP_PACKAGE = "finetune_studio>"
_ALLOWED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class UnsafeModelError(ValueError):
    """The file was refused; the message says why and what to do."""


def check_model_file(path: str | Path, *, max_bytes: int = MAX_MODEL_BYTES) -> dict[str, Any]:
    """Checks a ``.keras`` file without building anything; returns its config.

    Raises:
        UnsafeModelError: not a regular ``.keras`` file, too large, a decompression bomb,
            damaged, or a class outside the allow-list.
    """
    path = Path(path).expanduser()
    if path.suffix != ".keras":
        raise UnsafeModelError(
            f"{path}: only .keras model files are accepted (got {path.suffix or 'no extension'}). "
            "Legacy .h5 models and SavedModel folders can run code when loaded; re-save the model "
            "with `model.save('model.keras')` in the program that made it.")
    with _open_regular_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise UnsafeModelError(f"{path} is {size / 1e9:.1f} GB, over the {max_bytes / 1e9:.1f} GB "
                                   "limit for model files; it was not opened.")
        try:
            _check_directory_size(path, handle)
            with zipfile.ZipFile(handle) as archive:
                _check_members(path, archive, size, max_bytes)
                _verify_members(path, archive)
                config = _read_config(path, archive)
        except UnsafeModelError:
            raise
        except Exception as error:  # noqa: BLE001 - BadZipFile, NotImplementedError, struct.error...
            raise UnsafeModelError(f"{path} is not a .keras archive (not a valid zip file: {error}); "
                                   "it may be damaged or mislabelled.") from None
    for item in _class_entries(config):
        _check_class(path, item)
    return config


def load_model_safely(path: str | Path, *, max_bytes: int = MAX_MODEL_BYTES):
    """Checks the file (see ``check_model_file``), then loads it with ``safe_mode=True``."""
    import keras

    import models.preprocess  # noqa: F401 - registers the legacy layer older files hold

    check_model_file(path, max_bytes=max_bytes)
    try:
        return keras.saving.load_model(Path(path).expanduser(), compile=False, safe_mode=True)
    except Exception as error:
        raise UnsafeModelError(f"{path} could not be loaded as a Keras model: {_short(error)}") from error


def _short(error: BaseException) -> str:
    # Keras appends whole object configs to some messages (hundreds of lines).
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 300 else text[:300] + " ..."


# -- the file and the archive -------------------------------------------------------------------
def _open_regular_file(path: Path) -> BinaryIO:
    """Opens ``path`` for reading only if it is a regular file (never blocks on a FIFO)."""
    try:
        # O_NONBLOCK: a FIFO opens at once instead of waiting for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UnsafeModelError(f"{path} does not exist.") from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise UnsafeModelError(f"{path} cannot be opened: {reason}.") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else \
            "a device or other special file"
        raise UnsafeModelError(f"{path} is {kind}, not a model file; it was not opened.")
    return os.fdopen(fd, "rb")


def _check_directory_size(path: Path, handle: BinaryIO) -> None:
    """Refuses a central directory too large to be a model's, before zipfile parses it.

    zipfile reads the whole directory and builds an object per member: a 4 GB file of
    empty members would cost tens of GB before any per-member check could run.
    """
    end_record = getattr(zipfile, "_EndRecData", None)  # zipfile's own reader of the end record
    if end_record is None:
        return
    try:
        record = end_record(handle)
    except OSError:
        record = None
    if record is None:
        return  # not a zip: ZipFile says so next
    members, directory_bytes = record[zipfile._ECD_ENTRIES_TOTAL], record[zipfile._ECD_SIZE]
    if members > MAX_MEMBERS or directory_bytes > MAX_DIRECTORY_BYTES:
        raise UnsafeModelError(f"{path} lists {members} files in a {directory_bytes:,}-byte table of "
                               f"contents; a Keras model holds a handful (the limit is {MAX_MEMBERS} "
                               "files). It was not opened.")


def _check_members(path: Path, archive: zipfile.ZipFile, size: int, max_bytes: int) -> None:
    """Refuses archives whose members are too many, oddly named, or would unpack too much."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise UnsafeModelError(f"{path} holds {len(members)} files; a Keras model holds a handful "
                               f"(the limit is {MAX_MEMBERS}). It was not opened.")
    names: set[str] = set()
    for info in members:
        problem = _name_problem(info.filename)
        if problem:
            raise UnsafeModelError(f"{path} holds a member named {info.filename[:100]!r}, which "
                                   f"{problem}; it is not a Keras model file. It was not opened.")
        if info.filename in names:
            raise UnsafeModelError(f"{path} holds {info.filename!r} twice; it is not a Keras model "
                                   "file. It was not opened.")
        names.add(info.filename)
        if info.compress_type not in _ALLOWED_COMPRESSION or info.flag_bits & 0x1:
            raise UnsafeModelError(f"{path}: its member {info.filename!r} is encrypted or uses a "
                                   "compression Keras does not write; it was not opened.")
        if _expands_too_much(info.file_size, info.compress_size):
            raise UnsafeModelError(
                f"{path}: its member {info.filename!r} would unpack to {info.file_size / 1e6:,.0f} MB "
                f"from {info.compress_size / 1e6:,.1f} MB (over {MAX_EXPANSION}x): a decompression "
                "bomb, not a model. It was not opened.")
    unpacked = sum(info.file_size for info in members)
    if unpacked > max_bytes:
        raise UnsafeModelError(f"{path} would unpack to {unpacked / 1e9:.1f} GB, over the "
                               f"{max_bytes / 1e9:.1f} GB limit; it was not opened.")
    if _expands_too_much(unpacked, size):
        raise UnsafeModelError(f"{path} would unpack to {unpacked / 1e6:,.0f} MB from a "
                               f"{size / 1e6:,.1f} MB file (over {MAX_EXPANSION}x): a decompression "
                               "bomb, not a model. It was not opened.")
    if sum(info.compress_size for info in members) > size:
        raise UnsafeModelError(f"{path}: its members overlap (they claim more bytes than the file "
                               "has); it is damaged or crafted. It was not opened.")


def _expands_too_much(unpacked: int, stored: int) -> bool:
    return unpacked > EXPANSION_FLOOR_BYTES and unpacked > MAX_EXPANSION * stored


def _name_problem(name: str) -> str:
    if not name or len(name) > MAX_MEMBER_NAME_CHARS:
        return "is empty or too long"
    if _BAD_NAME_CHARS.search(name):
        return "contains a backslash or control characters"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "is an absolute path"
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    return ""


def _verify_members(path: Path, archive: zipfile.ZipFile) -> None:
    """Reads every member once: zipfile checks each CRC and stops at the declared size."""
    for info in archive.infolist():
        read = 0
        try:
            with archive.open(info) as member:
                while chunk := member.read(_READ_CHUNK):
                    read += len(chunk)
        except Exception as error:  # noqa: BLE001 - BadZipFile (CRC), EOFError, zlib.error, OSError
            raise UnsafeModelError(f"{path} is damaged: its member {info.filename!r} cannot be read "
                                   f"back ({error}). Train again or copy the file again.") from None
        if read != info.file_size:
            raise UnsafeModelError(f"{path} is damaged: its member {info.filename!r} holds {read} "
                                   f"bytes but declares {info.file_size}.")


def _read_config(path: Path, archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        info = archive.getinfo("config.json")
    except KeyError:
        raise UnsafeModelError(f"{path} has no config.json: it is not a Keras model file.") from None
    if info.file_size > MAX_CONFIG_BYTES:
        raise UnsafeModelError(f"{path}: its config.json is implausibly large "
                               f"({info.file_size / 1e6:,.0f} MB); not opened.")
    try:
        config = json.loads(archive.read(info))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UnsafeModelError(f"{path}: its config.json is not valid JSON ({error}).") from None
    except RecursionError:
        config = None  # reported below as too deep
    if config is None or _depth_over(config, MAX_CONFIG_DEPTH):
        raise UnsafeModelError(f"{path}: its config.json is nested more than {MAX_CONFIG_DEPTH} "
                               "levels deep; no real model is. It was not opened.")
    if not isinstance(config, dict):
        raise UnsafeModelError(f"{path}: its config.json is not a JSON object; it is not a Keras "
                               "model file.")
    return config


def _depth_over(node: Any, limit: int) -> bool:
    stack = [(node, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack += [(value, depth + 1) for value in node.values()]
        elif isinstance(node, list):
            stack += [(value, depth + 1) for value in node]
    return False


# -- the classes the config names ---------------------------------------------------------------
def _class_entries(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict with a ``class_name``, walked without recursion."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                yield node
            stack += reversed(list(node.values()))
        elif isinstance(node, list):
            stack += reversed(node)


def _check_class(path: Path, item: dict[str, Any]) -> None:
    name = item.get("class_name")
    registered = item.get("registered_name")
    module = item.get("module")
    if not isinstance(name, str) or not isinstance(registered, (str, type(None))) \
            or not isinstance(module, (str, type(None))):
        raise UnsafeModelError(f"{path}: its config.json names a class in a form Keras does not "
                               f"write ({str(item)[:200]}); it was refused.")
    if name in FORBIDDEN_CLASSES or (registered and registered.split(">")[-1] in FORBIDDEN_CLASSES):
        raise UnsafeModelError(
            f"{path} contains a {name} layer, which runs Python code stored in the file; it was "
            "refused. Rebuild the model without Lambda layers (use a registered custom layer).")
    if registered and registered != name:
        _check_app_class(path, name, registered, module)
        return
    if name == "__keras_tensor__" and module is None:
        return
    if module is not None and not _is_keras_module(module):
        raise UnsafeModelError(
            f"{path} needs the class {name!r} from module {module!r}, which is not on this app's "
            "allow-list (Keras built-ins and this app's own layers); it was refused.")


def _check_app_class(path: Path, name: str, registered: str, module: str | None) -> None:
    """A registered name is allowed only for this app's classes, with their real module."""
    cls = _app_classes().get(registered)
    if cls is None:
        raise UnsafeModelError(
            f"{path} needs the custom class {registered!r}, which is not on this app's allow-list "
            "(Keras built-ins and this app's own layers); it was refused.")
    if name != cls.__name__ or module != cls.__module__:
        raise UnsafeModelError(
            f"{path} names this app's class {registered!r} with class {name!r} from module "
            f"{module!r}, but that class is {cls.__name__!r} from {cls.__module__!r}: the file was "
            "altered or crafted; it was refused.")


def _app_classes() -> dict[str, type]:
    import keras

    import models.preprocess  # noqa: F401 - registers this app's classes

    return {key: value for key, value in keras.saving.get_custom_objects().items()
            if key.startswith(APP_PACKAGE) and isinstance(value, type)}


def _is_keras_module(module: str) -> bool:
    # Not a bare prefix test: "keras_evil" or "kerasx" must not pass as Keras.
    return module == "keras" or module.startswith("keras.")
