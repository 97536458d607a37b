"""Pretrained weights: the Keras ImageNet cache, offline use, and weights files.

ImageNet weights come from ``keras.applications``, which looks for one file per backbone
in its cache folder (``keras_cache_dir()``) and downloads it when missing. Offline, the
download fails within a second; ``WeightsUnavailableError`` then says which file to get,
from where, and where to put it (or ``import_weights_file`` copies it there).

``model.weights`` may also be the path of a file holding weights of the same backbone:
``.h5`` (a Keras ImageNet ``_no_top`` file, or legacy ``save_weights`` output),
``.weights.h5`` (``backbone.save_weights``) or ``.keras`` (a saved model containing the
backbone, e.g. a classifier from an earlier run).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

import keras

from models.imagenet_files import IMAGENET_FILES
from models.registry import get_spec

ProgressCallback = Callable[[int, "int | None"], None]
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WEIGHTS_FILE_SUFFIXES = (".h5", ".weights.h5", ".keras")


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are not cached and cannot be downloaded.

    Attributes:
        backbone: The backbone name.
        filename: The file name Keras looks for.
        folder: The folder to put it in (``keras_cache_dir()``).
        url: Where to download it on a machine with internet.
    """

    def __init__(self, message: str, *, backbone: str, filename: str, folder: Path, url: str):
        super().__init__(message)
        self.backbone = backbone
        self.filename = filename
        self.folder = folder
        self.url = url


# -- the cache ------------------------------------------------------------------------------
def keras_cache_dir() -> Path:
    """The folder ``keras.applications`` reads ImageNet weights from and downloads them to.

    ``$KERAS_HOME/models``, else ``~/.keras/models`` (``/tmp/.keras/models`` when those are
    not writable, as ``keras.utils.get_file`` does). Keras reads ``KERAS_HOME`` ONCE, when
    it is imported (``keras/src/backend/config.py``), so this asks Keras for the value it
    actually uses: set ``KERAS_HOME`` before starting the program, not later.
    """
    try:
        from keras.src.backend import config as keras_config

        home = keras_config.keras_home()
    except (ImportError, AttributeError):  # a future Keras moved it: same rule, read now
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    home = os.path.expanduser(home)
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(home) / "models"


def imagenet_weights_url(name: str, image_size: int) -> str:
    """The URL ``keras.applications`` downloads ``name``'s ``include_top=False`` weights from."""
    spec = _imagenet_spec(name)
    return IMAGENET_FILES[spec.name].url.format(rows=_weights_rows(spec, image_size))


def imagenet_weights_filename(name: str, image_size: int) -> str:
    """The exact file name Keras looks for in ``keras_cache_dir()``.

    E.g. ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``. MobileNet
    V1/V2 have one file per size in ``spec.imagenet_sizes``; other sizes use the 224 file.
    """
    entry = IMAGENET_FILES[_imagenet_spec(name).name]
    return entry.cache_name or imagenet_weights_url(name, image_size).rsplit("/", 1)[1]


def imagenet_weights_cached(name: str, image_size: int) -> bool:
    """Whether the ImageNet file for ``name`` at ``image_size`` px is already cached."""
    return (keras_cache_dir() / imagenet_weights_filename(name, image_size)).is_file()


def _imagenet_spec(name: str):
    spec = get_spec(name)
    if not spec.has_imagenet:
        raise ValueError(
            f"{name} has no ImageNet weights: `model.weights` must be \"none\" or a weights "
            f"file for it. Received: model.weights=\"imagenet\""
        )
    return spec


def _weights_rows(spec, image_size: int) -> int:
    return spec.imagenet_file_size(image_size)


def _hash_matches(path: Path, expected: str | None) -> bool:
    if expected is None:
        return True
    hasher = hashlib.sha256() if len(expected) == 64 else hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest() == expected


# -- getting the file into the cache ----------------------------------------------------------
def import_weights_file(path: str | Path, name: str, image_size: int) -> Path:
    """Copies an ImageNet weights file the user already has into the Keras cache.

    The copy is atomic (a temporary file in the cache folder, then ``os.replace``), so an
    interrupted import never leaves a half file under the name Keras trusts.

    Returns:
        The path of the cached file.

    Raises:
        ValueError: the file is missing, is not HDF5, or is not the official file (Keras
            checks the hash of most families and would try to download it again).
    """
    source = Path(path).expanduser()
    filename = imagenet_weights_filename(name, image_size)
    if not source.is_file():
        raise ValueError(f"Cannot import {source}: no such file. Pass the path of the "
                         f"downloaded {filename}.")
    with open(source, "rb") as file:
        if file.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
            raise ValueError(f"Cannot import {source}: it is not an HDF5 (.h5) file. "
                             f"Download {imagenet_weights_url(name, image_size)}.")
    if not _hash_matches(source, IMAGENET_FILES[_imagenet_spec(name).name].file_hash):
        raise ValueError(
            f"Cannot import {source}: it is not the official {filename} (its hash differs, so "
            f"Keras would discard it). Download {imagenet_weights_url(name, image_size)}.")
    return _copy_atomic(source, keras_cache_dir() / filename)


def _copy_atomic(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


def download_imagenet_weights(name: str, image_size: int,
                              progress: ProgressCallback | None = None) -> Path:
    """Downloads the ImageNet file into the cache (if missing), reporting progress.

    For a GUI progress bar: call this before building; ``build_backbone`` then finds the
    file. ``progress(downloaded_bytes, total_bytes_or_None)`` is called per chunk; raise
    from it to cancel. The file appears in the cache only once complete and verified.

    Raises:
        WeightsUnavailableError: no network, an HTTP error, or a corrupted download.
    """
    filename = imagenet_weights_filename(name, image_size)
    target = keras_cache_dir() / filename
    if target.is_file():
        return target
    url = imagenet_weights_url(name, image_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if not _hash_matches(Path(temporary), IMAGENET_FILES[_imagenet_spec(name).name].file_hash):
            raise OSError("the downloaded file is corrupted (its hash does not match)")
        os.replace(temporary, target)
    except OSError as error:  # URLError, HTTPError, timeouts and resets are OSErrors
        raise unavailable_error(name, image_size, error) from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


def unavailable_error(name: str, image_size: int, cause: BaseException | str,
                      *, cached_but_rejected: bool = False) -> WeightsUnavailableError:
    """The error that tells the user how to get ImageNet weights without this program."""
    filename = imagenet_weights_filename(name, image_size)
    folder = keras_cache_dir()
    url = imagenet_weights_url(name, image_size)
    rejected = (f" A file named {filename} was in that folder, but it is not the official "
                "file (its hash does not match), so Keras deleted it and tried to download it "
                "again."
                if cached_but_rejected else "")
    message = (
        f"ImageNet weights for {name} are not available: they are not in the Keras cache and "
        f"could not be downloaded ({cause}).{rejected}\n"
        f"To use them offline, download\n    {url}\n"
        f"on a machine with internet and put it, named\n    {filename}\n"
        f"into the folder\n    {folder}\n"
        "Or set `model.weights` to \"none\" (train from scratch) or to the path of a weights "
        "file (.h5, .weights.h5 or .keras)."
    )
    return WeightsUnavailableError(message, backbone=name, filename=filename, folder=folder,
                                   url=url)


# -- loading ---------------------------------------------------------------------------------
def ensure_imagenet_weights(name: str, image_size: int,
                            progress: ProgressCallback | None = None) -> Path:
    """The cached ImageNet file of ``name`` for ``image_size`` px, downloaded if missing.

    Called before ``keras.applications`` builds the backbone with ``weights="imagenet"``,
    so Keras then finds the file and never touches the network. Keras itself must build
    that model: EfficientNet (V1) adds a layer only when ``weights="imagenet"``.

    Raises:
        WeightsUnavailableError: not cached, and the download failed (e.g. offline).
    """
    return download_imagenet_weights(name, image_size, progress)


def is_weights_path(weights: str) -> bool:
    """Whether ``model.weights`` names a weights file (rather than "imagenet" or "none")."""
    return isinstance(weights, str) and weights.endswith(_WEIGHTS_FILE_SUFFIXES)


def load_weights_file(backbone: keras.Model, path: str | Path, *, backbone_name: str) -> None:
    """Loads a ``.h5``, ``.weights.h5`` or ``.keras`` file into a freshly built backbone.

    ``.h5``: a Keras ImageNet ``_no_top`` file or legacy ``save_weights`` output;
    ``.weights.h5``: ``backbone.save_weights``; ``.keras``: a saved model that contains
    the backbone (found by name, else by identical weight shapes), e.g. a classifier of
    an earlier run. For EfficientNet (V1) ImageNet files use ``import_weights_file`` and
    ``"imagenet"`` instead: Keras adds a rescaling layer only for ``"imagenet"``.

    Raises:
        ValueError: the file is missing or holds weights of another architecture; the
            message names the file and the backbone.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(
            f"The weights file {path} (`model.weights`) does not exist. Check the path, or "
            "set `model.weights` to \"imagenet\" or \"none\".")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if path.name.endswith(".keras"):
                _load_from_saved_model(backbone, path)
            else:
                backbone.load_weights(path)
        _raise_on_partial_load(caught)
    except Exception as error:  # h5py, Keras and shape errors vary; all mean "does not fit"
        raise ValueError(
            f"Cannot load the weights file {path} into {backbone_name}: {error}\n"
            f"The file must hold weights of the same architecture ({backbone_name}, saved with "
            "`save_weights`, a Keras ImageNet `_no_top` .h5 file, or a .keras model "
            "containing it). Pick the backbone the file was made for, or set "
            "`model.weights` to \"imagenet\" or \"none\"."
        ) from error


def _raise_on_partial_load(caught: list[warnings.WarningMessage]) -> None:
    # Keras only WARNS when parts of a .weights.h5 file do not match ("Skipping ...
    # Affected layers will retain their freshly-initialized weights"): a silent half load.
    skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)
               or "freshly-initialized" in str(w.message)]
    if skipped:
        raise ValueError(f"{len(skipped)} parts of the file do not match, e.g. {skipped[0]}")
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _load_from_saved_model(backbone: keras.Model, path: Path) -> None:
    from models.safe_load import load_model_safely

    saved = load_model_safely(path)
    source = _find_matching_model(saved, backbone)
    if source is None:
        nested = [layer.name for layer in _models_in(saved)]
        raise ValueError(
            f"no model inside it has the layout of {backbone.name} (models found: "
            f"{', '.join(nested)})")
    backbone.set_weights(source.get_weights())


def _find_matching_model(saved: keras.Model, backbone: keras.Model) -> keras.Model | None:
    # By name first; a size-dependent name (mobilenetv2_1.00_96) can differ from this
    # build's, so fall back to the first model whose weight shapes are identical.
    candidates = _models_in(saved)
    for model in candidates:
        if model.name == backbone.name:
            return model
    shapes = [tuple(w.shape) for w in backbone.weights]
    for model in candidates:
        if [tuple(w.shape) for w in model.weights] == shapes:
            return model
    return None


def _models_in(model: keras.Model) -> list[keras.Model]:
    found = [model]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _models_in(layer)
    return found
