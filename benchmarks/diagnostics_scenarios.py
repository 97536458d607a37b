"""Diagnostic scenarios: real short runs with a known problem, and the hints each raises.

    .venv/bin/python benchmarks/diagnostics_scenarios.py [--only NAME ...] [--workspace DIR]

Every scenario is a real ``run_training`` on small synthetic images (SmallCNN, 32 px, a
few epochs): a learning rate far too high or far too low, tiny data with no
regularization, heavy regularization on a small frozen model, a tiny validation set,
imbalanced classes, duplicates across the split, validation stuck at chance, a rate just
below divergence (oscillating), a frozen random backbone (underfitting), a run stopped too
soon, and healthy runs. It prints a markdown table scenario x hint, then the numbers behind the thresholds
(``Diagnostics.statistics``), and writes both to
``benchmarks/results/diagnostics_scenarios.md``. ``tests/test_diagnostics_scenarios.py``
runs the same scenarios and asserts that each broken run raises its hint and the healthy
ones raise no warning.

The "pretrained" backbone is a stand-in for ImageNet weights (no network here): SmallCNN
trained for a few epochs on five other shape classes, saved once per workspace.
"""

from __future__ import annotations

import argparse
import io
import math
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import Config
from training.data.sample import make_shapes_dataset
from training.events import Event, Failed, Hint

RESULTS = Path(__file__).resolve().parent / "results" / "diagnostics_scenarios.md"
QUIET_AUGMENTATION = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0,
                      "augmentation.zoom": 0.0, "augmentation.translation": 0.0}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    expected: tuple[str, ...]                      # hint ids that must fire; () = healthy
    build: Callable[["Workspace"], Config]
    slow: bool = False                             # over a minute: benchmark only, not the tests


@dataclass
class ScenarioResult:
    name: str
    stop_reason: str
    hints: list[Hint]
    statistics: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float
    error: str = ""

    @property
    def hint_ids(self) -> list[str]:
        return [h.id for h in self.hints]

    @property
    def alarms(self) -> list[Hint]:
        return [h for h in self.hints if h.severity in ("warning", "error")]


class Workspace:
    """Data sets and the stand-in pretrained backbone, made on first use and shared."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, Path] = {}

    def data(self, name: str, **kwargs: Any) -> Path:
        if name not in self._cache:
            self._cache[name] = make_shapes_dataset(self.root / name, size=32, **kwargs)
        return self._cache[name]

    def main(self) -> Path:
        """3 classes x 90 easy images: 54 for validation with the default 0.2 split."""
        return self.data("main", classes=3, per_class=90, seed=3, easy=True)

    def pretrained(self) -> str:
        """A SmallCNN trained on five shape classes, as a weights file."""
        target = self.root / "pretrained.keras"
        if not target.exists():
            from training.engine.run import run_training

            source = self.data("pretrain", classes=5, per_class=30, seed=11, easy=True)
            config = config_for(source, **{"training.head_epochs": 0, "training.fine_tune_epochs": 4,
                                           "training.fine_tune_layers": "all",
                                           "training.fine_tune_learning_rate": 0.003})
            result = run_training(config, run_dir=self.root / "pretrain_run", on_event=lambda e: None)
            if result.stop_reason != "completed":
                raise RuntimeError(f"Pretraining the stand-in backbone failed: {result.error}")
            shutil.copy(self.root / "pretrain_run" / "best.keras", target)
        return str(target)


def config_for(data_dir: Path, **overrides: Any) -> Config:
    values = {"data.dir": str(data_dir), "model.backbone": "SmallCNN", "model.weights": "none",
              "data.image_size": 32, "data.batch_size": 16}
    values.update(overrides)
    return Config().with_overrides(values)


def _scratch(**overrides: Any) -> dict[str, Any]:
    return {"training.head_epochs": 0, "training.fine_tune_layers": "all", **overrides}


# -- the scenarios ------------------------------------------------------------------------
def _healthy_scratch(ws: Workspace) -> Config:
    return config_for(ws.main(), **_scratch(**{"training.fine_tune_epochs": 5,
                                               "training.fine_tune_learning_rate": 0.003}))


def _healthy_transfer(ws: Workspace) -> Config:
    return config_for(ws.main(), **{"model.weights": ws.pretrained(), "training.head_epochs": 3,
                                    "training.fine_tune_epochs": 3, "training.fine_tune_layers": "all"})


def _lr_far_too_high(ws: Workspace) -> Config:
    return config_for(ws.main(), **_scratch(**{"training.fine_tune_epochs": 3,
                                               "training.fine_tune_learning_rate": 3.0}))


def _lr_far_too_low(ws: Workspace) -> Config:
    return config_for(ws.main(), **{"model.weights": ws.pretrained(), "training.head_epochs": 4,
                                    "training.fine_tune_epochs": 0, "optimizer.learning_rate": 1e-6})


def _tiny_data_no_regularization(ws: Workspace) -> Config:
    train = ws.data("tiny", classes=3, per_class=8, seed=4, colour_hint=0.3)
    validation = ws.data("tiny_validation", classes=3, per_class=20, seed=5, colour_hint=0.3)
    return config_for(train, **_scratch(**{
        "data.validation_dir": str(validation), "data.batch_size": 8,
        "training.fine_tune_epochs": 12, "training.fine_tune_learning_rate": 0.003,
        "model.head.dropout": 0.0, **QUIET_AUGMENTATION}))


def _heavy_regularization_frozen(ws: Workspace) -> Config:
    return config_for(ws.main(), **{
        "model.weights": ws.pretrained(), "training.head_epochs": 6, "training.fine_tune_epochs": 0,
        "model.head.dropout": 0.8, "regularization.l2": 0.05, "regularization.label_smoothing": 0.3,
        "augmentation.zoom": 0.5, "augmentation.translation": 0.4, "augmentation.rotation": 0.4,
        "augmentation.gaussian_noise": 0.3, "augmentation.contrast": 0.6})


def _tiny_validation_set(ws: Workspace) -> Config:
    data = ws.data("small_split", classes=3, per_class=40, seed=6, easy=True)
    return config_for(data, **_scratch(**{"data.validation_split": 0.05, "training.fine_tune_epochs": 2,
                                          "training.fine_tune_learning_rate": 0.003}))


def _imbalanced_classes(ws: Workspace) -> Config:
    root = ws.root / "imbalanced"
    if not root.exists():
        make_shapes_dataset(root, classes=3, per_class=90, size=32, seed=7, easy=True)
        for name, keep in (("square", 25), ("triangle", 10)):
            for path in sorted((root / name).iterdir())[keep:]:
                path.unlink()
    return config_for(root, **_scratch(**{"training.fine_tune_epochs": 2,
                                          "training.fine_tune_learning_rate": 0.003}))


def _duplicates_across_split(ws: Workspace) -> Config:
    # 64 px files (trained at 32 px): a JPEG re-save of a 32 px file is too coarse to tell
    # from a different image (training/data/duplicates.py).
    train = ws.root / "dup_train"
    validation = ws.root / "dup_validation"
    if not validation.exists():
        make_shapes_dataset(train, classes=3, per_class=60, size=64, seed=8, easy=True)
        make_shapes_dataset(validation, classes=3, per_class=18, size=64, seed=9, easy=True)
        _copy_into_validation(train, validation)
    return config_for(train, **_scratch(**{"data.validation_dir": str(validation),
                                           "training.fine_tune_epochs": 2,
                                           "training.fine_tune_learning_rate": 0.003}))


def _copy_into_validation(train: Path, validation: Path) -> None:
    """Per class: 2 byte-identical copies and 2 re-saved as JPEG (quality 80) of training images."""
    from PIL import Image

    for folder in sorted(p for p in train.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        for source in files[:2]:
            shutil.copy(source, validation / folder.name / f"copy_{source.name}")
        for source in files[2:4]:
            buffer = io.BytesIO()
            Image.open(source).convert("RGB").save(buffer, "JPEG", quality=80)
            (validation / folder.name / f"resaved_{source.stem}.jpg").write_bytes(buffer.getvalue())


def _sgd_near_divergence(ws: Workspace) -> Config:
    # SGD with momentum 0.9 and batches of 4: 0.1 diverges within the first epoch, 0.05
    # bounces (the loss swings by 0.6 ln C from batch to batch) and still gets there.
    return config_for(ws.main(), **_scratch(**{"optimizer.name": "sgd", "data.batch_size": 4,
                                               "training.fine_tune_epochs": 2,
                                               "training.fine_tune_learning_rate": 0.05}))


def _frozen_random_backbone(ws: Workspace) -> Config:
    # A linear head on random, frozen SmallCNN features: it can only learn so much. Only an
    # explicit mode trains a head on random weights (`auto` trains from scratch).
    return config_for(ws.main(), **{"training.mode": "head_only", "training.head_epochs": 5,
                                    "training.fine_tune_epochs": 0, "optimizer.learning_rate": 0.003})


# MobileNetV2 with random weights, frozen under the head: its features vanish (~1e-11), so the
# loss sits at exactly ln 3 (a SmallCNN's random features still carry colour). Then
# fine-tuning its top 30 layers at a tenth of the rate: training learns, validation stays at
# chance. ~12 s and ~25 s.
def _frozen_random_head(ws: Workspace) -> Config:
    return config_for(ws.main(), **{"model.backbone": "MobileNetV2", "training.mode": "head_only",
                                    "training.head_epochs": 3, "training.fine_tune_epochs": 0})


def _fine_tuned_on_a_frozen_random_head(ws: Workspace) -> Config:
    return config_for(ws.main(), **{"model.backbone": "MobileNetV2", "training.mode": "fine_tune",
                                    "training.head_epochs": 1, "training.fine_tune_epochs": 3,
                                    "training.fine_tune_layers": 30,
                                    "training.fine_tune_learning_rate": 1e-4})


def _stopped_too_soon(ws: Workspace) -> Config:
    return config_for(ws.main(), **_scratch(**{"training.fine_tune_epochs": 3,
                                               "training.fine_tune_learning_rate": 1e-4}))


def _batch_norm_mismatch(ws: Workspace) -> Config:
    # docs/facts.md#batchnorm-momentum: a keras.applications backbone trained from scratch
    # at a tiny size learns in training mode while validation (BatchNorm in inference mode)
    # stays at chance.
    # SmallCNN with momentum 0.999 did not reproduce it (its statistics start close enough).
    return config_for(ws.main(), **_scratch(**{"model.backbone": "MobileNetV2",
                                               "training.fine_tune_epochs": 4,
                                               "training.fine_tune_learning_rate": 0.001}))


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("healthy_scratch", "SmallCNN from scratch, 3 x 90 easy images, Adam 3e-3, 5 epochs",
             (), _healthy_scratch),
    Scenario("healthy_transfer", "stand-in pretrained SmallCNN: head 3 epochs, then all layers 3 epochs",
             (), _healthy_transfer),
    Scenario("lr_far_too_high", "from scratch at learning rate 3.0", ("lr_too_high",), _lr_far_too_high),
    Scenario("lr_far_too_low", "frozen pretrained backbone, head at learning rate 1e-6",
             ("lr_too_low",), _lr_far_too_low),
    Scenario("tiny_data_no_regularization", "8 images a class, no augmentation, no dropout, 12 epochs",
             ("overfitting",), _tiny_data_no_regularization),
    Scenario("heavy_regularization_frozen", "frozen pretrained backbone; dropout 0.8, L2 0.05, "
             "label smoothing 0.3, strong augmentation", ("too_much_regularization",),
             _heavy_regularization_frozen),
    Scenario("tiny_validation_set", "validation_split 0.05 of 3 x 40 images (6 for validation)",
             ("val_too_small",), _tiny_validation_set),
    Scenario("imbalanced_classes", "90 / 25 / 10 images per class", ("class_imbalance",),
             _imbalanced_classes),
    Scenario("duplicates_across_split", "validation folder holds 6 copies and 6 JPEG re-saves of "
             "training images", ("data_leakage",), _duplicates_across_split),
    Scenario("sgd_near_divergence", "from scratch, SGD (momentum 0.9) at 0.05, batches of 4",
             ("oscillating",), _sgd_near_divergence),
    Scenario("frozen_random_backbone", "linear head on a frozen, randomly initialized SmallCNN, 5 epochs",
             ("frozen_random_backbone", "underfitting"), _frozen_random_backbone),
    Scenario("frozen_random_head", "head on a frozen MobileNetV2 with random weights, 3 epochs",
             ("frozen_random_backbone",), _frozen_random_head),
    Scenario("fine_tuned_on_a_frozen_random_head", "1 head epoch on a frozen random MobileNetV2, "
             "then its top 30 layers at 1e-4 for 3 epochs", ("frozen_random_backbone", "val_stuck_at_chance"),
             _fine_tuned_on_a_frozen_random_head),
    Scenario("stopped_too_soon", "healthy from scratch but at 1e-4 for only 3 epochs",
             ("not_converged",), _stopped_too_soon),
    Scenario("batch_norm_mismatch", "MobileNetV2 from scratch at 32 px (BatchNorm statistics)",
             ("val_stuck_at_chance",), _batch_norm_mismatch, slow=True),
)}


# -- running ------------------------------------------------------------------------------
@contextmanager
def _recording_diagnostics(config: Config) -> Iterator[list]:
    """Captures the run's Diagnostics object (``TrainingSession.prepare_data`` makes it), to
    read its statistics afterwards."""
    import training.engine.run as engine

    original = engine.Diagnostics
    made: list = []

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any):
            kwargs.setdefault("config", config)
            super().__init__(**kwargs)
            made.append(self)

    engine.Diagnostics = Recording
    try:
        yield made
    finally:
        engine.Diagnostics = original


def run_scenario(name: str, workspace: Workspace) -> ScenarioResult:
    from training.engine.run import run_training

    scenario = SCENARIOS[name]
    config = scenario.build(workspace)
    events: list[Event] = []
    run_dir = workspace.root / f"run_{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.monotonic()
    with _recording_diagnostics(config) as made:
        result = run_training(config, run_dir=run_dir, on_event=events.append)
    seconds = time.monotonic() - started
    failed = [e for e in events if isinstance(e, Failed)]
    statistics = made[-1].statistics() if made else {}
    return ScenarioResult(name=name, stop_reason=result.stop_reason,
                          hints=[e for e in events if isinstance(e, Hint)], statistics=statistics,
                          history=list(result.history), seconds=seconds,
                          error=failed[0].message if failed else "")


# -- the report ---------------------------------------------------------------------------
STATISTICS = (
    ("initial_excess", "initial loss - ln C (first batch / mean of 5)", "> 2.5 both"),
    ("divergence_ratio", "max smoothed loss / reference", "> 3"),
    ("phase_val_improvement", "best val-loss gain in a phase (>= 3 epochs)", "< 0.05 (+ train < 0.05)"),
    ("val_loss_rise_nats", "val loss - 1.2 x best (2-epoch window, min)", ">= 0.05"),
    ("accuracy_gap", "train - val accuracy (2-epoch window, min)", ">= 0.3"),
    ("regularization_gap_ln_c", "train - mid-epoch val loss, / ln C (2 epochs, min)", ">= 0.25"),
    ("oscillation_swing_ln_c", "batch-to-batch swing / ln C (2 blocks of 16, min)", ">= 0.5"),
    ("oscillation_swing_relative", "batch-to-batch swing / loss level (2 blocks, min)", ">= 0.5"),
    ("final_loss_fraction", "final min(train, val) loss / ln C (last 2 epochs, max)", ">= 0.5 (+ acc)"),
    ("final_improvement", "monitor gain over the last 3 epochs (nats)", ">= 0.05, >= 10 %, steady"),
)


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def markdown(results: list[ScenarioResult]) -> str:
    ids = [i for i in _hint_order() if any(i in r.hint_ids for r in results)]
    lines = ["| scenario | stop | " + " | ".join(ids) + " | s |",
             "|---|---|" + "---|" * len(ids) + "---|"]
    for r in results:
        expected = SCENARIOS[r.name].expected
        cells = []
        for hint_id in ids:
            fired = next((h for h in r.hints if h.id == hint_id), None)
            if fired is not None:
                cells.append(("**" if hint_id in expected else "") + fired.severity
                             + ("**" if hint_id in expected else ""))
            else:
                cells.append("MISSED" if hint_id in expected else "")
        lines.append(f"| {r.name} | {r.stop_reason} | " + " | ".join(cells) + f" | {r.seconds:.0f} |")
    lines += ["", "Bold: the hint the scenario is built to raise. The numbers behind the thresholds:", "",
              "| scenario | " + " | ".join(label for _, label, _ in STATISTICS) + " |",
              "|---|" + "---|" * len(STATISTICS),
              "| *fires when* | " + " | ".join(rule for _, _, rule in STATISTICS) + " |"]
    for r in results:
        stats = dict(r.statistics)
        if "initial_first_batch" in stats:
            stats["initial_excess"] = (f"{stats['initial_first_batch'] - stats['chance_loss']:.2f} / "
                                       f"{stats['initial_mean'] - stats['chance_loss']:.2f}")
        lines.append(f"| {r.name} | " + " | ".join(_format(stats.get(k)) for k, _, _ in STATISTICS) + " |")
    lines += evidence_lines(results)
    return "\n".join(lines) + "\n"


EVIDENCE_KEYS = {
    "lr_too_high": ("batch", "loss", "reference_loss"),
    "initial_loss_off": ("first_batch_loss", "mean_loss", "expected"),
    "lr_too_low": ("epochs", "train_improvement", "val_improvement"),
    "frozen_random_backbone": ("seen_in", "epochs", "loss", "chance_loss"),
    "overfitting": ("kind", "best_epoch", "epoch", "val_loss_rise", "accuracy_gap"),
    "too_much_regularization": ("epoch", "gap", "gap_relative"),
    "val_stuck_at_chance": ("epoch", "accuracy", "val_accuracy", "chance_accuracy"),
    "plateau": ("epochs_without_improvement",),
    "oscillating": ("epoch", "batch", "swing_ln_c", "swing_relative"),
    "underfitting": ("epoch", "loss_fraction", "accuracy", "val_accuracy", "still_improving"),
    "not_converged": ("monitor", "values", "improvement", "improvement_relative"),
    "class_imbalance": ("ratio",),
    "val_too_small": ("validation_images", "smallest_class_images", "points_per_image"),
    "data_leakage": ("exact", "near", "validation_images_affected", "seconds"),
}


def evidence_lines(results: list[ScenarioResult]) -> list[str]:
    lines = ["", "Evidence of each hint that fired:", ""]
    for r in results:
        for hint in r.hints:
            keys = EVIDENCE_KEYS.get(hint.id, tuple(hint.evidence)[:3])
            shown = ", ".join(f"{k} {_format(_number(hint.evidence.get(k)))}" for k in keys if k in hint.evidence)
            lines.append(f"- {r.name} / {hint.id} ({hint.severity}): {shown}")
    return lines


def _number(value: Any) -> Any:
    """Evidence keeps a non-finite loss as a string ("nan"); numbers print as numbers."""
    if not isinstance(value, str):
        return value
    try:
        return float(value)
    except ValueError:
        return value


def _hint_order() -> tuple[str, ...]:
    from training.diagnostics.thresholds import HINT_IDS

    return HINT_IDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to run")
    parser.add_argument("--fast", action="store_true", help="leave out the slow scenarios")
    parser.add_argument("--workspace", type=Path, help="keep data and runs here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"markdown file (default {RESULTS})")
    args = parser.parse_args(argv)
    names = args.only or [n for n, s in SCENARIOS.items() if not (args.fast and s.slow)]
    with tempfile.TemporaryDirectory() as temporary:
        workspace = Workspace(args.workspace or Path(temporary))
        results = []
        for name in names:
            result = run_scenario(name, workspace)
            print(f"{name}: {result.stop_reason}, hints {result.hint_ids or '-'} ({result.seconds:.1f} s)"
                  + (f" ERROR {result.error}" if result.error else ""), file=sys.stderr)
            results.append(result)
    table = markdown(results)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Diagnostic scenarios\n\nWritten by `benchmarks/diagnostics_scenarios.py`"
                        f" ({time.strftime('%Y-%m-%d')}).\n\n" + table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
