"""Lists the constructor arguments of Keras's serializable classes, for the file-version test.

    python scripts/keras_arguments.py OUT.json

Run it in a venv holding the oldest Keras the app promises to open its files in (3.13.2):
tests/data/keras-3.13.2-arguments.json is its output there. ``tests/test_portable_model.py``
checks that every key ``models.saving.save_model`` writes into a config is one of these
arguments, so a Keras bump that adds keys fails there until ``models.saving.NEWER_KEYS``
lists them (docs/facts.md#keras-file-versions).
"""

from __future__ import annotations

import inspect
import json
import sys

import keras

MODULES = ["layers", "initializers", "regularizers", "constraints", "optimizers", "losses", "metrics"]
# Layer.__init__ takes these through **kwargs (keras/src/layers/layer.py, "allowed_kwargs").
LAYER_KWARGS = ["input_dim", "input_shape", "batch_input_shape", "batch_size", "weights"]


def arguments(cls: type) -> list[str]:
    names = set()
    for klass in cls.__mro__:  # arguments a base class takes through **kwargs count too
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        names |= {name for name, p in parameters.items()
                  if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            break
    if issubclass(cls, keras.layers.Layer):
        names |= set(LAYER_KWARGS)
    return sorted(names)


def main(out: str) -> None:
    listing: dict[str, list[str]] = {}
    for module in MODULES:
        for name, cls in vars(getattr(keras, module)).items():
            if inspect.isclass(cls):
                listing[f"keras.{module}.{name}"] = arguments(cls)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write('{"keras": %s, "arguments": {\n' % json.dumps(keras.__version__))
        handle.write(",\n".join(f"{json.dumps(name)}: {json.dumps(args)}"
                                for name, args in sorted(listing.items())))
        handle.write("\n}}\n")


if __name__ == "__main__":
    main(sys.argv[1])
