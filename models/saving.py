"""Saving a model as a ``.keras`` file that every supported Keras opens.

A newer Keras writes config keys an older one does not know, and an older Keras refuses a
layer or initializer config with an unknown key ("Unrecognized keyword arguments passed to
BatchNormalization"): a file saved by the pinned Keras 3.15 would not open in the Keras
3.13.2 and 3.14 the app promises. ``save_model`` saves with Keras, then removes from
``config.json`` each key of ``NEWER_KEYS`` that holds its default, the value the older
Keras uses without the key, so every version reads the same model. A key set to anything
else stays (the file then needs the newer Keras, as it should). The weights and metadata
members are copied byte for byte.

``NEWER_KEYS`` is every constructor argument of a class in keras.layers, keras.initializers,
keras.regularizers, keras.constraints, keras.optimizers, keras.losses and keras.metrics that
Keras 3.15.1 has and Keras 3.13.2 has not (found by listing both versions' signatures, see
docs/facts.md#keras-file-versions). Bumping the Keras pin means redoing that list.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

_AXES = {"input_axes": None, "output_axes": None}
_ATTENTION = {"sliding_window": None, "use_gate": False}
# (module, class name) -> {key: default}
NEWER_KEYS: dict[tuple[str, str], dict[str, Any]] = {
    **{("keras.initializers", name): _AXES for name in (
        "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform",
        "VarianceScaling")},
    ("keras.layers", "BatchNormalization"): {"renorm": False, "renorm_clipping": None,
                                             "renorm_momentum": 0.99},
    ("keras.layers", "MultiHeadAttention"): _ATTENTION,
    ("keras.layers", "GroupQueryAttention"): _ATTENTION,
    ("keras.layers", "IntegerLookup"): {"oov_method": "floormod", "salt": None},
    ("keras.layers", "StringLookup"): {"salt": None},
    ("keras.layers", "JaxLayer"): {"native_serialization_platforms": None},
    ("keras.metrics", "SparseCategoricalCrossentropy"): {"ignore_class": None},
}


def save_model(model: Any, path: Path) -> None:
    """``model.save(path)``, then ``make_portable(path)``."""
    model.save(path)
    make_portable(Path(path))


def make_portable(path: Path) -> bool:
    """Removes the keys of ``NEWER_KEYS`` that hold their default from the
    ``config.json`` of the ``.keras`` file at ``path``, and makes a model trained in mixed
    precision compute in float32 (``to_float32``). Returns whether anything changed."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        changed = _strip(config)
        changed = to_float32(config) or changed
        if not changed:
            return False
        tmp = path.with_name(path.name + ".portable")
        try:
            with zipfile.ZipFile(tmp, "w") as out:
                for info in archive.infolist():
                    copy = zipfile.ZipInfo(info.filename, info.date_time)
                    copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
                    if info.filename == "config.json":
                        out.writestr(copy, json.dumps(config))
                        continue
                    # Streamed: the weights of a large model do not fit in memory twice.
                    with archive.open(info) as source, \
                            out.open(copy, "w", force_zip64=info.file_size >= zipfile.ZIP64_LIMIT) as sink:
                        shutil.copyfileobj(source, sink, 1024 * 1024)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return True


MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def to_float32(config: Any) -> bool:
    """A model trained under a mixed policy keeps float32 variables but computes in float16;
    the saved file says so, and every Keras that opens it would compute in float16 too (slow
    on a CPU, and a trap for converters). Its layers' policies become float32 and the float16
    tensors between them float32: the same weights, computed in full precision. A model with
    no mixed policy is left as it is."""
    text = json.dumps(config)
    if not any(f'"{name}"' in text for name in MIXED_POLICIES):
        return False
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            inner = node.get("config")
            if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(inner, dict) \
                    and inner.get("name") in MIXED_POLICIES:
                inner["name"] = "float32"
            if node.get("class_name") == "__keras_tensor__" and isinstance(inner, dict) \
                    and inner.get("dtype") in ("float16", "bfloat16"):
                inner["dtype"] = "float32"
            for key, value in node.items():
                if key == "dtype" and value in MIXED_POLICIES:
                    node[key] = "float32"
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack += node
    return True


def _strip(node: Any) -> bool:
    """Removes default-valued newer keys from every config below ``node``."""
    changed = False
    if isinstance(node, dict):
        inner = node.get("config")
        newer = NEWER_KEYS.get((str(node.get("module")), str(node.get("class_name"))), {})
        if isinstance(inner, dict):
            for key, default in newer.items():
                if key in inner and inner[key] == default and type(inner[key]) is type(default):
                    del inner[key]
                    changed = True
        for value in node.values():
            changed = _strip(value) or changed
    elif isinstance(node, list):
        for value in node:
            changed = _strip(value) or changed
    return changed
