"""Backbones, ImageNet weights, the classifier and its freezing steps.

Never imports ``training`` (layering) nor Qt. Importing the package itself loads nothing
(``models.registry`` is Keras-free and read by the config and the window); the modules that
build or load models import Keras. A classifier holds only Keras's built-in layers (its input
scaling too: ``models.preprocess.add_preprocessing``), so plain Keras loads its ``.keras``
file; ``models.preprocess`` still registers the legacy ``Preprocess`` layer of files saved
before that.
"""
