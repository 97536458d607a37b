"""Sanity tools to run before a long training run (Karpathy, "A Recipe for Training
Neural Networks", 2019: verify the loss at init, overfit one batch, find a learning rate).

- ``check_setup`` (``setup_check``): the data checks of a run, then the untrained model's
  loss on a few batches (regularization off, inference mode) against ln(C), and with a
  strong L2 penalty on the head, which must raise the loss.
- ``overfit_tiny_subset`` (``overfit``): train on ~20 images with no regularization and no
  augmentation until training accuracy reaches 100 %. If it cannot, the model or the
  pipeline is broken (labels that do not match the images, a rate far off, nothing
  trainable), whatever the rest of the data.
- ``lr_range_test`` (``lr_range``): raise the learning rate exponentially from ``min_lr``
  to ``max_lr`` over ``steps`` batches on a throwaway model and record the smoothed loss
  (Smith 2017, "Cyclical Learning Rates", section 3.3; the fastai learning-rate finder).

Each is a plain function of a ``Config`` with an optional ``on_event`` (``Log`` progress
and the ``Hint`` events) and ``stop`` flag, returning a plain dataclass whose ``hints``
list is empty when all is well. They build everything from the engine's own pieces
(``prepare_data``, ``build_classifier``, ``training.engine.optim``, the recipe's rates) and
never touch a run folder.
"""

from training.engine.sanity.lr_range import ExponentialRange, LRRangeResult, lr_range_test
from training.engine.sanity.overfit import OverfitResult, overfit_tiny_subset
from training.engine.sanity.setup_check import STRONG_L2, SetupCheck, check_setup

__all__ = ["STRONG_L2", "ExponentialRange", "LRRangeResult", "OverfitResult", "SetupCheck",
           "check_setup", "lr_range_test", "overfit_tiny_subset"]
