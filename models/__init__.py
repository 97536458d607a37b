"""Backbones, ImageNet weights, the classifier and its freezing steps.

Keras only: never imports ``training`` (layering) nor Qt. Importing the package
registers the custom layers (``Preprocess``) so saved ``.keras`` models load with
``safe_mode=True``.
"""

from models.preprocess import Preprocess

__all__ = ["Preprocess"]
