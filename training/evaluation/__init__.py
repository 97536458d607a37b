"""Evaluation: which images a trained model gets wrong, how sure it is, per class.

``evaluate`` (``python main.py evaluate``) writes evaluation.json, predictions.csv,
confusion_matrix.png and report.md; a run evaluates its best model itself when it ends
(``evaluate_after_training``).
"""

from training.evaluation.errors import EvaluationError
from training.evaluation.evaluate import SPLITS, default_folder, evaluate, evaluate_after_training

__all__ = ["EvaluationError", "SPLITS", "default_folder", "evaluate", "evaluate_after_training"]
