"""Backbones, ImageNet weights, the classifier and its freezing steps.

Never imports ``training`` (layering) nor Qt. Importing the package itself loads nothing
(``models.registry`` is Keras-free and read by the config and the window); the modules that
build or load models import Keras, and ``models.preprocess`` registers the custom layer that
saved ``.keras`` files of this app need.
"""
