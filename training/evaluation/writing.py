"""The evaluation folder: evaluation.json, predictions.csv, confusion_matrix.png, report.md.

Written into a hidden staging folder and renamed into place when complete
(``training.publish``): a folder named ``evaluation*`` with an evaluation.json is whole.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation.metrics import per_image
from training.evaluation.plot import draw_confusion_matrix
from training.evaluation.scoring import Scored
from training.publish import Publication, publish, staging_folder

EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.csv"
MATRIX_FILE = "confusion_matrix.png"
REPORT_FILE = "report.md"
SPLIT_WORDS = {"validation": "validation images (they chose the best epoch)",
               "test": "held-out test images (never used in training or to choose the epoch)",
               "folder": "images of a folder"}


def write_evaluation(target: Path, document: dict[str, Any], scored: Scored, kind: Publication) -> None:
    with staging_folder(target, kind) as staging:
        (staging / EVALUATION_FILE).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n",
                                               encoding="utf-8")
        write_predictions(staging / PREDICTIONS_FILE, document["classes"], scored)
        draw_confusion_matrix(document["confusion_matrix"], document["classes"], staging / MATRIX_FILE,
                              title=_matrix_title(document))
        (staging / REPORT_FILE).write_text(report_markdown(document), encoding="utf-8")
        publish(staging, target, kind)


def write_predictions(path: Path, classes: list[str], scored: Scored) -> None:
    probabilities, predicted, confidence, losses = per_image(scored.labels, scored.probabilities)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "true", "predicted", "confidence", "loss", *classes])
        for i, path_text in enumerate(scored.paths):
            writer.writerow([path_text, classes[scored.labels[i]], classes[predicted[i]],
                             f"{confidence[i]:.6g}", f"{losses[i]:.6g}", *(f"{p:.6g}" for p in probabilities[i])])


def _matrix_title(document: dict[str, Any]) -> str:
    right = int(np.trace(np.asarray(document["confusion_matrix"])))
    return (f"{document['split'].capitalize()}: {right} of {document['images']} right "
            f"({document['accuracy']:.1%})")


def report_markdown(document: dict[str, Any]) -> str:
    """A short human summary of evaluation.json."""
    lines = [f"# Evaluation: {', '.join(Path(run).name for run in document['runs'])}", "",
             f"{document['images']} {SPLIT_WORDS.get(document['split'], document['split'])} from "
             f"`{document['data']}`; {document['date']}.", ""]
    top_k = document["top_k_accuracy"]
    lines += ["| | |", "|---|---|",
              f"| accuracy | {document['accuracy']:.2%} |",
              f"| top-{top_k['k']} accuracy | {top_k['value']:.2%} |",
              f"| loss (cross-entropy) | {document['loss']:.4f} |",
              f"| macro F1 | {document['macro_avg']['f1']:.3f} |"]
    if document.get("tta"):
        lines.append(f"| accuracy without test-time augmentation | {document['accuracy_without_tta']:.2%} |")
    ensemble = document.get("ensemble")
    if ensemble:
        lines.append(f"| best single model ({Path(ensemble['best_member']).name}) | "
                     f"{ensemble['best_member_accuracy']:.2%} |")
        lines.append(f"| gain of the average | {ensemble['gain']:+.2%} |")
    lines += ["", "## Per class", "", "| class | precision | recall | F1 | images |", "|---|---|---|---|---|"]
    for name, row in document["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
                     f"{row['support']} |")
    confused = most_confused(document)
    if confused:
        lines += ["", "## Most confused", ""]
        lines += [f"- {count} {true} taken for {predicted}" for true, predicted, count in confused]
    lines += ["", f"![confusion matrix]({MATRIX_FILE})", "", "## Highest losses", "",
              "Often mislabelled images, or ones the classes do not describe.", "",
              "| loss | true | predicted | confidence | image |", "|---|---|---|---|---|"]
    for item in document["top_losses"][:10]:
        lines.append(f"| {item['loss']:.3f} | {item['true']} | {item['predicted']} | "
                     f"{item['confidence']:.1%} | `{item['path']}` |")
    if document.get("skipped"):
        lines += ["", f"{len(document['skipped'])} image(s) could not be read and were skipped "
                      f"(see {EVALUATION_FILE})."]
    for warning in document.get("warnings", []):
        lines += ["", f"Note: {warning}"]
    return "\n".join(lines) + "\n"


def most_confused(document: dict[str, Any], count: int = 5) -> list[tuple[str, str, int]]:
    classes, matrix = document["classes"], document["confusion_matrix"]
    pairs = [(classes[i], classes[j], matrix[i][j]) for i in range(len(classes))
             for j in range(len(classes)) if i != j and matrix[i][j] > 0]
    return sorted(pairs, key=lambda pair: -pair[2])[:count]
