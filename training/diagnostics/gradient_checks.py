"""The gradient checks: functions of the per-group gradient norms that
``training.diagnostics.gradients.GradientProbe`` measures once an epoch (no Keras here)."""

from __future__ import annotations

from typing import Any

from training.diagnostics.curves import finite
from training.diagnostics.thresholds import EXPLODING_GROWTH, EXPLODING_MIN_NORM, VANISHING_RATIO


def exploding_evidence(norms: dict[str, float], previous: dict[str, float] | None
                       ) -> dict[str, Any] | None:
    total = norms.get("total")
    if total is None:
        return None
    if not finite(total):
        return {"total_norm": str(total), "kind": "non_finite"}
    before = (previous or {}).get("total")
    if (before and finite(before) and before > 0 and total / before >= EXPLODING_GROWTH
            and total >= EXPLODING_MIN_NORM):
        return {"kind": "growth", "total_norm": round(total, 6), "previous_total_norm": round(before, 6),
                "growth": round(total / before, 2)}
    return None


def vanishing_evidence(norms: dict[str, float]) -> dict[str, Any] | None:
    head = norms.get("head")
    backbone = {k: v for k, v in norms.items() if k.startswith("backbone") and finite(v)}
    if not head or not finite(head) or head <= 0 or not backbone:
        return None
    weakest = min(backbone, key=backbone.get)
    ratio = backbone[weakest] / head
    if ratio < VANISHING_RATIO:
        return {"group": weakest, "group_rms": backbone[weakest], "head_rms": head,
                "ratio": ratio, "norms": dict(norms)}
    return None
