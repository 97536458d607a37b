"""The model card of an export: ``model_card.json`` (for tools) and ``model_card.md`` (for people).

It says what a user of the file needs and nothing they must guess: the classes, what goes in
(shape, type, layout, colour order, value range, how images were resized), what comes out,
which scaling the model does itself, how the run went, the config, the library versions,
the date, and the verification figures of this very file.
"""

from __future__ import annotations

import datetime
import platform
from importlib import metadata
from typing import Any

from training.export.options import FormatSpec

CARD_SCHEMA_VERSION = 1

# What the model's own first layer does to the 0-255 input, by the backbone's scaling mode
# (``models.registry.BackboneSpec.preprocess``, as keras.applications' preprocess_input).
_SCALING = {
    "tf": "scales to [-1, 1]: x / 127.5 - 1",
    "caffe": "reorders RGB to BGR and subtracts the ImageNet mean pixel (B 103.939, G 116.779, R 123.68)",
    "torch": "scales to [0, 1], then per RGB channel subtracts the ImageNet mean (0.485, 0.456, 0.406) "
             "and divides by its standard deviation (0.229, 0.224, 0.225)",
    "none": "passes the 0-255 values to the backbone, which scales them itself",
}
_RUNTIME_PACKAGES = {
    "keras": ("keras", "tensorflow"),
    "saved_model": ("tensorflow",),
    "tflite": ("ai-edge-litert", "tensorflow"),
    "onnx": ("onnxruntime", "onnx", "tf2onnx"),
}


def build_card(*, spec: FormatSpec, quantize: str, source: Any, verification: dict[str, Any],
               calibration_images: int, model_file_bytes: int) -> dict[str, Any]:
    """``model_card.json`` as a dict (``source`` is a ``training.export.source.RunSource``)."""
    config = source.config
    size = source.image_size
    summary = source.summary or {}
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": source.run_dir.name,
        "format": spec.name,
        "quantization": quantize,
        "files": {"model": spec.model_file, "labels": "labels.txt", "labels_exact": "labels.json",
                  "predict": "predict.py", "verification": "verification.json"},
        "model_file_bytes": model_file_bytes,
        "runtime": spec.runtime,
        "requirements": list(spec.requirements),
        "classes": list(source.classes),
        "input": {
            "shape": [None, size, size, 3], "dtype": "float32", "layout": "NHWC", "color": "RGB",
            "value_range": [0, 255],
            "resize": f"the whole image squashed to {size} x {size} px (no crop), bilinear filter",
        },
        "output": {"shape": [None, len(source.classes)], "dtype": "float32",
                   "meaning": "softmax probabilities, one per class in labels.txt order"},
        "preprocessing_inside": preprocessing_text(config.model.backbone),
        "backbone": config.model.backbone,
        "weights": config.model.weights,
        "run": {key: summary.get(key) for key in (
            "stop_reason", "monitor", "best_epoch", "best_metrics", "epochs_completed",
            "train_images", "validation_images", "finished_at")},
        "config": config.to_dict(),
        "verification": verification,
        "versions": library_versions(spec.name),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if quantize == "int8":
        card["calibration"] = {"images": calibration_images,
                               "source": "a seeded random sample of the run's training images"}
    return card


def preprocessing_text(backbone: str) -> str:
    from models.registry import get_spec

    try:
        mode = get_spec(backbone).preprocess
    except (KeyError, ValueError):
        return "unknown (the backbone is not in this app's registry); see config.model.backbone"
    return (f"The model {_SCALING.get(mode, f'scales its input ({mode!r} mode)')}. Give it plain "
            "0-255 RGB values; do not scale them yourself.")


def library_versions(fmt: str) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "pillow", *_RUNTIME_PACKAGES[fmt]):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def card_markdown(card: dict[str, Any]) -> str:
    """``model_card.md``: the card for people."""
    check = card["verification"]
    size = card["input"]["shape"][1]
    metrics = (card["run"].get("best_metrics") or {})
    quantized = "" if card["quantization"] == "none" else f", {card['quantization']} quantized"
    lines = [
        f"# {card['name']}: {card['format']}{quantized}",
        "",
        f"An image classifier for {len(card['classes'])} classes, trained with Finetune Studio "
        f"({card['backbone']} backbone, weights: {card['weights']}); exported {card['exported_at']}.",
        "",
        "## Use",
        "",
        f"- Model: `{card['files']['model']}` ({_megabytes(card['model_file_bytes'])}); runtime: "
        f"{card['runtime']}.",
        f"- `python predict.py IMAGE...` prints the top class of each image. It needs "
        f"`pip install {' '.join(card['requirements'])}` and nothing else.",
        f"- Input: float32, shape (batch, {size}, {size}, 3) (NHWC), **RGB values 0-255**; "
        f"{card['input']['resize']}.",
        f"- Inside: {card['preprocessing_inside']}",
        f"- Output: {card['output']['meaning']}, shape (batch, {len(card['classes'])}).",
        f"- Classes: {', '.join(card['classes'])}.",
        "",
        "## Verified",
        "",
        f"Reloaded with {card['runtime']} and scored on the run's {check['images']} validation images "
        "against the Keras model:",
        "",
        "| top-1 agreement | largest probability difference | accuracy (Keras) | ms per image | "
        "tolerance | result |",
        "|---|---|---|---|---|---|",
        f"| {check['agreement']:.1%} | {check['max_probability_difference']:.2g} | "
        f"{check['accuracy']:.1%} ({check['keras_accuracy']:.1%}) | {check['ms_per_image']:.2f} | "
        f"{_tolerance(check)} | {'passed' if check['passed'] else 'FAILED'} |",
        "",
    ]
    if card["quantization"] == "int8":
        lines += [f"Accuracy drop from int8: {check['accuracy_drop'] * 100:.1f} points ({check['accuracy']:.1%}, "
                  f"float Keras model {check['keras_accuracy']:.1%}); calibrated on "
                  f"{card['calibration']['images']} training images.", ""]
    lines += [
        "## Training run",
        "",
        f"Stopped: {card['run'].get('stop_reason')}; best epoch {card['run'].get('best_epoch')} "
        f"of {card['run'].get('epochs_completed')} by {card['run'].get('monitor')}: "
        + ", ".join(f"{key} {value:.4g}" for key, value in metrics.items()
                    if key in ("accuracy", "val_accuracy", "loss", "val_loss") and isinstance(value, (int, float)))
        + f". Images: {card['run'].get('train_images')} training, {card['run'].get('validation_images')} "
        "validation. The whole config is in `model_card.json`.",
        "",
        "## Versions",
        "",
        ", ".join(f"{name} {version}" for name, version in card["versions"].items() if version) + ".",
        "",
    ]
    return "\n".join(lines)


def _tolerance(check: dict[str, Any]) -> str:
    limit = check.get("tolerance")
    return "none (reported)" if limit is None else f"{limit:g}"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 10_000 else f"{size / 1e3:.1f} kB"
