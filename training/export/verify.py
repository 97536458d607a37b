"""How an export's answers compare with the Keras model's, and whether that passes.

The figures, per export, on the run's validation images:

    agreement                   share of images whose top class equals the Keras model's
    max_probability_difference  largest |p_export - p_keras| over every image and class
    accuracy, accuracy_drop     top-1 accuracy, and the Keras model's minus it
    ties                        images whose two best Keras probabilities are within the
                                tolerance of each other: an export as close as allowed may
                                rank them either way, so they are not counted against it
    ms_per_image                median time of one image on this machine (batch 1)

A float export passes when no probability is further than the tolerance from the Keras
model's and every image that is not a tie gets the Keras model's top class
(``training.export.options.TOLERANCES``). int8 has no tolerance: its figures are reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.export.options import Tolerance


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray,
            tolerance: Tolerance) -> dict[str, Any]:
    """The figures of ``candidate`` against ``reference`` (both (N, classes) probabilities).

    Returns:
        A plain dict (JSON-ready): the figures above, ``passed`` and, when it did not pass,
        ``problem``, a sentence that says what was off by how much.
    """
    if candidate.shape != reference.shape:
        return {"passed": False, "problem": f"the export gives outputs of shape {candidate.shape[1:]}, "
                                            f"the Keras model {reference.shape[1:]}"}
    limit = tolerance.max_probability_difference
    reference_top, candidate_top = reference.argmax(axis=1), candidate.argmax(axis=1)
    differences = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    ordered = np.sort(reference, axis=1)
    margins = ordered[:, -1] - ordered[:, -2]
    ties = margins <= (limit if limit is not None else 0.0)
    disagree = candidate_top != reference_top
    reference_accuracy = float(np.mean(reference_top == labels))
    accuracy = float(np.mean(candidate_top == labels))
    figures: dict[str, Any] = {
        "images": int(len(labels)),
        "agreement": float(1.0 - disagree.mean()),
        "disagreements": int(disagree.sum()),
        "ties": int(ties.sum()),
        "max_probability_difference": float(differences.max()) if differences.size else 0.0,
        "accuracy": accuracy,
        "keras_accuracy": reference_accuracy,
        "accuracy_drop": reference_accuracy - accuracy,
        "tolerance": limit,
    }
    if not np.all(np.isfinite(candidate)):
        figures.update(passed=False, problem="the export gives probabilities that are not finite numbers")
        return figures
    if limit is None:
        figures["passed"] = True
        return figures
    problems = []
    if figures["max_probability_difference"] > limit:
        where = np.unravel_index(int(differences.argmax()), differences.shape)
        problems.append(f"probabilities differ from the Keras model's by up to "
                        f"{figures['max_probability_difference']:.3g} (image {where[0] + 1}), more than "
                        f"the tolerance {limit:g}")
    wrong = int((disagree & ~ties).sum())
    if wrong:
        problems.append(f"the top class differs from the Keras model's on {wrong} of {len(labels)} "
                        "images")
    figures["passed"] = not problems
    if problems:
        figures["problem"] = "; ".join(problems)
    return figures
