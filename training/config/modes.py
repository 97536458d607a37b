"""Which phases a run trains: ``training.mode`` decided and written into the phase keys.

Keras-free and below both the engine (``training.engine.recipe`` plans from it) and the
diagnostics (whose hints must name the keys that really set a rate), so both read one rule.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# ``training.config.Config`` (typed ``Any``: that package imports this module).
Config = Any


def training_mode(config: Config) -> str:
    """The mode that runs: ``training.mode``, with ``auto`` decided by the weights."""
    return mode_for(config.training.mode, config.model.weights)


def mode_for(mode: str, weights: str) -> str:
    """``training_mode`` from the two settings alone (the window's controls ask it too)."""
    if mode == "auto":
        return "from_scratch" if weights == "none" else "fine_tune"
    return mode


def resolve_mode(config: Config) -> Config:
    """The config with its mode decided and its phase keys saying what runs (a copy, or
    ``config`` itself when nothing changes; resolving twice changes nothing):

    - ``from_scratch``: no head phase; the fine-tuning phase unfreezes ``"all"`` layers for
      ``head_epochs + fine_tune_epochs`` epochs (at ``training.fine_tune_learning_rate``
      when set, else ``optimizer.learning_rate``: ``training.engine.recipe``);
    - ``head_only``: no fine-tuning phase;
    - ``fine_tune``: as configured.
    """
    mode = training_mode(config)
    t = config.training
    changes: dict = {"mode": mode}
    if mode == "from_scratch":
        changes.update(head_epochs=0, fine_tune_epochs=t.head_epochs + t.fine_tune_epochs,
                       fine_tune_layers="all")
    elif mode == "head_only":
        changes.update(fine_tune_epochs=0)
    if all(getattr(t, key) == value for key, value in changes.items()):
        return config
    resolved = config.copy()
    resolved.training = dataclasses.replace(resolved.training, **changes)
    return resolved
