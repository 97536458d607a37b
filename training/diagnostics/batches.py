"""The batch-level checks: a constant-size trace of each phase's training losses (for the
divergence, oscillation and initial-loss checks) and the initial-loss verdict. Constant time
per batch: ``Diagnostics.observe_batch`` runs after every training step."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from training.diagnostics.curves import finite
from training.diagnostics.thresholds import (
    DIVERGENCE_WINDOW,
    INITIAL_LOSS_MAX_EXCESS,
    INITIAL_LOSS_MIN_FRACTION,
    OSCILLATION_BLOCK,
    REFERENCE_BATCHES,
)


@dataclass
class PhaseTrace:
    """Constant-size summary of one phase's training batches."""
    phase: str
    batches: int = 0
    first_loss: float = math.nan
    head_sum: float = 0.0        # sum of the first REFERENCE_BATCHES losses
    head_min: float = math.inf
    recent: deque = field(default_factory=lambda: deque(maxlen=DIVERGENCE_WINDOW))
    max_ratio: float = 0.0       # largest smoothed loss / reference seen (for benchmarks)
    swing_sum: float = 0.0       # sum of |loss_t - loss_t-1| in the current block
    level_sum: float = 0.0       # sum of the losses in the current block
    block_swing: float = math.nan  # mean swing of the previous complete block
    block_relative: float = math.nan  # its mean swing / its mean loss
    sustained_swing: float = math.nan  # min of the last two blocks' mean swings
    sustained_relative: float = math.nan  # min of their swing / level
    max_sustained_swing: float = 0.0   # the largest sustained swing (for benchmarks)
    max_sustained_relative: float = 0.0

    def add(self, loss: float) -> None:
        self.batches += 1
        if self.batches == 1:
            self.first_loss = loss
        if self.batches <= REFERENCE_BATCHES:
            self.head_sum += loss
            self.head_min = min(self.head_min, loss)
        # Swing blocks start after the phase's first block (where the loss falls fast);
        # each block's first swing is measured against the previous block's last loss.
        if self.batches > OSCILLATION_BLOCK:
            self.swing_sum += abs(loss - self.recent[-1])
            self.level_sum += loss
            if (self.batches - OSCILLATION_BLOCK) % OSCILLATION_BLOCK == 0:
                swing = self.swing_sum / OSCILLATION_BLOCK
                relative = swing / max(1e-12, self.level_sum / OSCILLATION_BLOCK)
                if finite(self.block_swing):
                    self.sustained_swing = min(swing, self.block_swing)
                    self.sustained_relative = min(relative, self.block_relative)
                    self.max_sustained_swing = max(self.max_sustained_swing, self.sustained_swing)
                    self.max_sustained_relative = max(self.max_sustained_relative, self.sustained_relative)
                self.block_swing, self.block_relative = swing, relative
                self.swing_sum = self.level_sum = 0.0
        self.recent.append(loss)

    def take_sustained_swing(self) -> tuple[float, float]:
        """(mean swing, swing / level) of the two blocks just completed; NaN between block ends."""
        taken = (self.sustained_swing, self.sustained_relative)
        self.sustained_swing = self.sustained_relative = math.nan
        return taken

    @property
    def head_mean(self) -> float:
        return self.head_sum / max(1, min(self.batches, REFERENCE_BATCHES))


def initial_loss_verdict(first_loss: float, mean_loss: float, num_classes: int) -> str | None:
    """"high", "low" or None. Both the first batch (before any update) and the mean of the
    first few must be off the same way, so neither one unlucky batch nor a rate that moves
    the loss from the second batch on can trigger it."""
    if not finite(first_loss, mean_loss):
        return None
    expected = math.log(max(2, num_classes))
    high = expected + INITIAL_LOSS_MAX_EXCESS
    low = expected * INITIAL_LOSS_MIN_FRACTION
    if first_loss > high and mean_loss > high:
        return "high"
    if first_loss < low and mean_loss < low:
        return "low"
    return None
