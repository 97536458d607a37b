"""The figures of an evaluation, from one set of predictions, with scikit-learn.

Everything is computed from the same (N, classes) probabilities: the predicted class is the
row's argmax (as ``predict`` reports it), the loss of an image is the categorical
cross-entropy of its true class (the training loss without label smoothing), clipped as
scikit-learn's ``log_loss`` clips, so the mean of the per-image losses is ``loss``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# At least this many images are listed in `top_losses` (all of them when there are fewer).
TOP_LOSSES = 200


def per_image(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, ...]:
    """(probabilities, predicted, confidence, loss) of every image, the probabilities as
    float64 rows that sum to 1 (float32 softmax rows do so only within float32's precision)."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.asarray(probabilities, dtype=np.float64)
    rows = rows / rows.sum(axis=1, keepdims=True)
    predicted = rows.argmax(axis=1)
    eps = np.finfo(rows.dtype).eps
    everyone = np.arange(len(labels))
    losses = -np.log(np.clip(rows[everyone, labels], eps, 1 - eps))
    return rows, predicted, rows[everyone, predicted], losses


def default_top_k(num_classes: int) -> int:
    return min(5, num_classes)


def evaluation_figures(classes: list[str], labels: np.ndarray, probabilities: np.ndarray,
                       paths: list[str], top_k: int | None = None) -> dict[str, Any]:
    """evaluation.json's figures: accuracy, loss, top-k accuracy, per-class and averaged
    precision / recall / F1, the confusion matrix and the images with the highest loss."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        log_loss,
        top_k_accuracy_score,
    )

    labels = np.asarray(labels, dtype=np.int64)
    probabilities, predicted, confidence, losses = per_image(labels, probabilities)
    everyone = list(range(len(classes)))
    k = max(1, min(top_k or default_top_k(len(classes)), len(classes)))
    report = classification_report(labels, predicted, labels=everyone, target_names=classes,
                                   output_dict=True, zero_division=0)
    order = np.argsort(-losses, kind="stable")[:max(TOP_LOSSES, 0)]
    return {
        "classes": list(classes),
        "images": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(log_loss(labels, probabilities, labels=everyone)),
        "top_k_accuracy": {"k": k, "value": 1.0 if k >= len(classes) else float(top_k_accuracy_score(
            labels, probabilities, k=k, labels=everyone))},
        "per_class": {name: _row(report[name]) for name in classes},
        "macro_avg": _row(report["macro avg"]),
        "weighted_avg": _row(report["weighted avg"]),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=everyone).tolist(),
        "top_losses": [{"path": paths[i], "true": classes[labels[i]], "predicted": classes[predicted[i]],
                        "confidence": float(confidence[i]), "loss": float(losses[i])} for i in order],
    }


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    return {"precision": float(entry["precision"]), "recall": float(entry["recall"]),
            "f1": float(entry["f1-score"]), "support": int(entry["support"])}
