"""A helper process answering the GUI's small engine questions: ``python -m training.service.helper``.

The backbone catalog, the planned learning rates and the augmentation preview all need
Keras. Importing it in the app's own process would freeze the window for 0.4-0.5 s at a
time through the GIL (FIELD_NOTES), so they run here instead, one request at a time.

Protocol: stdin and stdout carry one JSON object a line.
Request ``{"method": "...", "params": {...}}``; reply ``{"result": ...}`` or
``{"error": "message"}``. Images travel as base64 of their raw uint8 bytes with a shape.
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
from typing import Any

import numpy as np

from training.service.child import _event_stream, lower_priority


def encode_array(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_array(payload: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload["data"]), dtype=np.uint8).reshape(payload["shape"])


def _catalog(params: dict[str, Any]) -> Any:
    from training.api import backbone_catalog

    return backbone_catalog()


def _device(params: dict[str, Any]) -> Any:
    # Not in training.api yet: the engine's own device description, as RunStarted shows it.
    from training.engine.device import describe_device

    return describe_device()


def _planned(params: dict[str, Any]) -> Any:
    from training.api import Config, planned_learning_rates

    return planned_learning_rates(Config.from_dict(params["config"]), int(params["steps_per_epoch"]))


def _preview(params: dict[str, Any]) -> Any:
    from training.api import Config, load_preview_images, preview_augmentation

    config = Config.from_dict(params["config"])
    originals = load_preview_images(params["paths"], int(params["size"]))
    augmented = preview_augmentation(config, originals, seed=int(params["seed"]))
    return {"originals": encode_array(originals), "augmented": encode_array(augmented)}


METHODS = {"catalog": _catalog, "device": _device, "planned_learning_rates": _planned, "preview": _preview,
           "ping": lambda params: "pong"}


def handle(request: dict[str, Any]) -> dict[str, Any]:
    method = METHODS.get(request.get("method", ""))
    if method is None:
        return {"error": f"Unknown method {request.get('method')!r}; known: {', '.join(METHODS)}."}
    try:
        return {"result": method(request.get("params") or {})}
    except Exception as error:  # noqa: BLE001  (sent back to the GUI, which shows it)
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(error).__name__}: {error}"}


def main() -> int:
    lower_priority()
    replies = _event_stream()
    for line in sys.stdin:
        if not line.strip():
            continue
        replies.write(json.dumps(handle(json.loads(line))) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
