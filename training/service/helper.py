"""The small calls an engine process answers for the window (``Call`` -> ``Reply``).

The backbone catalog, the device, the planned learning rates, the augmentation preview and
exports all need Keras. Importing it in the window's own process would freeze the window
(docs/facts.md#gil-freeze), so a long-lived engine process answers them, one at a time.
Images travel as ``training.service.messages.encode_array`` payloads.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from typing import Any, Callable

import numpy as np

from training import api
from training.service.client import PROTOCOL_ERROR, user_message
from training.service.messages import Call, Reply, encode_array


def _catalog(params: dict[str, Any]) -> Any:
    return api.backbone_catalog()


def _device(params: dict[str, Any]) -> Any:
    return api.device_description()


def _planned(params: dict[str, Any]) -> Any:
    return api.planned_learning_rates(api.Config.from_dict(params["config"]), int(params["steps_per_epoch"]))


def _preview(params: dict[str, Any]) -> Any:
    config = api.Config.from_dict(params["config"])
    originals = api.load_preview_images(params["paths"], int(params["size"]))
    augmented = api.preview_augmentation(config, originals, seed=int(params["seed"]))
    return {"originals": encode_array(originals), "augmented": encode_array(augmented)}


def _export(params: dict[str, Any]) -> Any:
    """One export and its verification (``training.api.export_run``), as a plain dict."""
    result = api.export_run(params["run_dir"], params["format"], quantize=params.get("quantize", "none"))
    return dataclasses.asdict(result)


def _evaluate(params: dict[str, Any], progress: Callable[[int, int], None] | None = None) -> Any:
    """evaluation.json's content (``training.api.evaluate``), ``folder`` added."""
    return api.evaluate(params["run_dir"], split=params.get("split", "validation"),
                        tta=bool(params.get("tta", False)), on_progress=progress)


def _predict(params: dict[str, Any]) -> Any:
    return api.predict(params["run_dir"], params["paths"], top_k=int(params.get("top_k", 5)),
                       tta=bool(params.get("tta", False)))


def _grad_cam(params: dict[str, Any]) -> Any:
    result = api.grad_cam(params["run_dir"], params["path"], class_name=params.get("class_name"))
    # Images travel as uint8: the heat map as 0-255 (the window only draws it).
    result["heatmap"] = np.round(np.clip(result["heatmap"], 0.0, 1.0) * 255)
    for key in ("image", "heatmap", "overlay"):
        result[key] = encode_array(result[key])
    return result


def _ping(params: dict[str, Any]) -> Any:
    return "pong"


METHODS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "catalog": _catalog, "device": _device, "planned_learning_rates": _planned, "preview": _preview,
    "export": _export, "evaluate": _evaluate, "predict": _predict, "grad_cam": _grad_cam,
    "ping": _ping,
}


# Methods that take a progress callback as their second argument.
LONG_METHODS = (_evaluate,)


def handle(call: Call, progress: Callable[[int, int], None] | None = None) -> Reply:
    """Answers one call; a failure becomes the reply's ``error`` (never raises). A long call
    reports through ``progress(done, total)`` (a ``Progress`` message before its reply)."""
    method = METHODS.get(call.method)
    if method is None:
        return Reply(error=f"`method` must be one of {', '.join(METHODS)}. Received: method={call.method!r}",
                     error_type=PROTOCOL_ERROR)
    try:
        if method in LONG_METHODS and progress is not None:
            return Reply(result=method(call.params, progress))
        return Reply(result=method(call.params))
    except Exception as error:  # noqa: BLE001  (sent back to the window, which shows it)
        traceback.print_exc(file=sys.stderr)
        kind = type(error).__name__
        return Reply(error=user_message(kind, str(error)), error_type=kind)
