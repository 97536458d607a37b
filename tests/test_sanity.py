"""The sanity tools on real tiny data: check the setup, overfit 20 images, find a rate."""

from __future__ import annotations

import json
import math
import shutil
import threading

import numpy as np
import pytest

from tests.helpers import make_tiny_dataset
from training.cli.main import main
from training.config import Config
from training.engine import sanity

SMALL = {"model.backbone": "SmallCNN", "model.weights": "none", "data.image_size": 32,
         "data.batch_size": 16, "training.head_epochs": 0, "training.fine_tune_epochs": 3,
         "training.fine_tune_layers": "all", "training.fine_tune_learning_rate": 0.003}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """3 classes x 90 easy images: 54 for validation, so the data checks stay quiet."""
    return make_tiny_dataset(tmp_path_factory.mktemp("sanity"), per_class=90, size=32)


def small_config(data_dir, **overrides) -> Config:
    return Config().with_overrides({"data.dir": str(data_dir), **SMALL, **overrides})


def test_check_setup_of_a_sound_setup(data_dir):
    logs = []
    result = sanity.check_setup(small_config(data_dir), on_event=logs.append)
    assert result.hints == [] and result.ok
    assert result.expected_loss == pytest.approx(math.log(3))
    assert abs(result.initial_loss - math.log(3)) < 0.5
    # Strong L2 on the head raises the loss by what the head's weights predict.
    assert result.regularized_loss - result.initial_loss == pytest.approx(result.expected_penalty, rel=0.05)
    assert any("Scanning" in getattr(e, "message", "") for e in logs)


def test_check_setup_reports_regularization_that_never_reaches_the_loss(data_dir, monkeypatch):
    from training.engine.sanity import common, setup_check

    def broken(setup, regularization, head_dropout=None):  # a pipeline that drops the settings
        return common.build(setup, common.no_regularization(setup.config), head_dropout)

    monkeypatch.setattr(setup_check, "build", broken)
    result = sanity.check_setup(small_config(data_dir))
    assert [h.id for h in result.hints] == ["regularization_not_applied"]
    assert result.hints[0].severity == "error" and not result.ok


def test_check_setup_runs_the_data_checks(tmp_path):
    data = make_tiny_dataset(tmp_path, per_class=20, size=32)
    result = sanity.check_setup(small_config(data))
    assert [h.id for h in result.hints] == ["val_too_small"]


def test_check_setup_honours_the_stop_flag(tmp_path):
    stop = threading.Event()
    stop.set()
    result = sanity.check_setup(small_config(make_tiny_dataset(tmp_path, per_class=20, size=32)), stop=stop)
    assert result.stopped and not result.ok
    assert [h.id for h in result.hints] == ["val_too_small"]  # the data checks ran first


def test_overfit_tiny_subset_memorizes_twenty_images(data_dir):
    result = sanity.overfit_tiny_subset(small_config(data_dir, **{"model.head.dropout": 0.5,
                                                                  "regularization.l2": 0.1}))
    assert result.reached and result.hints == []
    assert result.images == 20 and result.final_accuracy >= 0.999
    assert result.epochs == len(result.losses) < 150
    assert result.losses[-1] < result.losses[0]


def test_overfit_fails_when_labels_do_not_match_the_images(tmp_path):
    # The same pictures filed under both classes: no model can tell them apart.
    data = make_tiny_dataset(tmp_path, classes=2, per_class=15, size=32)
    for path in (data / "square").iterdir():
        path.unlink()
    for path in (data / "circle").iterdir():
        shutil.copy(path, data / "square" / path.name)
    result = sanity.overfit_tiny_subset(small_config(data), max_epochs=25)
    assert not result.reached and result.epochs == 25
    assert [h.id for h in result.hints] == ["overfit_failed"] and result.hints[0].severity == "error"
    for fix in result.hints[0].fixes:
        Config().with_overrides(fix)


def test_lr_range_test_returns_a_curve_and_a_suggestion(data_dir):
    result = sanity.lr_range_test(small_config(data_dir), steps=60, min_lr=1e-6, max_lr=1.0)
    count = len(result.learning_rates)
    assert 10 <= count <= 60 and len(result.losses) == len(result.raw_losses) == count
    assert all(isinstance(v, float) for v in result.learning_rates + result.losses)
    assert result.learning_rates[0] == pytest.approx(1e-6)
    ratios = np.diff(np.log(result.learning_rates))
    np.testing.assert_allclose(ratios, np.log(1e6) / 59, rtol=1e-6)  # exponential growth
    assert min(result.losses) < 0.9 * result.losses[0] and result.verdict == "clear"
    assert 1e-6 <= result.suggested_learning_rate <= 1.0
    assert result.suggested_learning_rate <= result.min_loss_learning_rate / 10 * 1.05
    for hint in result.hints:
        for fix in hint.fixes:
            Config().with_overrides(fix)


def test_lr_range_test_leaves_the_given_model_untouched(data_dir):
    from models.classifier import build_classifier

    config = small_config(data_dir)
    model = build_classifier(config.model, config.regularization, image_size=32, num_classes=3, seed=1).model
    before = [np.array(w) for w in model.get_weights()]
    result = sanity.lr_range_test(config, steps=15, model=model)
    assert len(result.losses) > 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert getattr(model, "optimizer", None) is None  # not even compiled: the clone was


def test_lr_range_test_honours_the_stop_flag(data_dir):
    stop = threading.Event()
    stop.set()
    result = sanity.lr_range_test(small_config(data_dir), steps=20, stop=stop)
    assert result.stopped and result.losses == [] and result.hints == []


def test_cli_check_and_lr_find(data_dir, capsys):
    settings = [item for key, value in SMALL.items() for item in ("--set", f"{key}={json.dumps(value)}")]
    assert main(["check", "--data", str(data_dir), *settings, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ln(3) = 1.099" in out and "Setup looks right." in out

    assert main(["lr-find", "--data", str(data_dir), *settings, "--steps", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["learning_rates"]) == len(result["losses"]) > 0
    assert result["phase"] == "fine_tune" and isinstance(result["hints"], list)


def test_cli_sanity_commands_fail_cleanly_on_a_bad_folder(tmp_path, capsys):
    (tmp_path / "only").mkdir()
    assert main(["overfit", "--data", str(tmp_path), "--set", "model.backbone=SmallCNN",
                 "--set", "model.weights=none"]) == 2
    assert "at least 2" in capsys.readouterr().err


# -- what the range test says about its curve ------------------------------------------------------
def range_result(losses, phase: str = "fine_tune"):
    """A measured curve: ``losses`` (smoothed) over rates from 1e-7 growing 10x every 15 steps."""
    from training.engine.sanity.lr_range import LRRangeResult

    rates = [1e-7 * 10 ** (i / 15) for i in range(len(losses))]
    return LRRangeResult(learning_rates=rates, losses=list(losses), raw_losses=list(losses), phase=phase,
                         suggested_learning_rate=None, min_loss_learning_rate=None, steepest_learning_rate=None)


def falling(fall: float, steps: int = 120, start: float = 1.1) -> list[float]:
    """Flat, then down by ``fall`` (a fraction of the start) around step 80, then up (diverging)."""
    shape = [1 / (1 + math.exp(-(i - 80) / 6)) for i in range(steps - 10)]
    return [start * (1 - fall * s) for s in shape] + [start * (1 - fall) * (1 + 0.4 * k) for k in range(1, 11)]


CURVES = {
    "clear": falling(0.6),
    "shallow": falling(0.06),         # the case: a small fall, and the setup then trained well
    "flat": [1.0986 + 1e-5 * math.sin(i) for i in range(120)],
    "lowest_at_start": [1.0 + 0.001 * i for i in range(120)],
    "diverged_at_once": [1.1, 2.5, 9.0],
}


def range_texts(result, found) -> tuple[list[str], object]:
    """Every text the window shows side by side: the engine's hints and the summary."""
    from dataclasses import asdict

    from gui.tools import summary_hint

    payload = dict(asdict(result), hints=[h.to_dict() for h in found])
    summary = summary_hint("lr_range_test", payload)
    texts = [f"{h.title} {h.message}" for h in found + ([summary] if summary else [])]
    return texts, summary


@pytest.mark.parametrize("name", list(CURVES))
def test_lr_range_words_never_contradict_the_suggestion(name):
    from training.engine.recipe import phase_learning_rate
    from training.engine.sanity.lr_range import judge_curve

    config = Config().with_overrides({"model.weights": "none"})
    result = range_result(CURVES[name])
    found = judge_curve(result, config)
    texts, summary = range_texts(result, found)
    suggested = result.suggested_learning_rate
    if name in ("clear", "shallow"):
        assert suggested is not None and result.verdict == name
        assert result.steepest_learning_rate <= result.min_loss_learning_rate
        for text in texts:
            assert "inconclusive" not in text.lower() and "elsewhere" not in text, text
        # From scratch the one phase trains at optimizer.learning_rate: the fix sets that.
        assert summary.fixes == [{"optimizer.learning_rate": suggested}]
        assert phase_learning_rate(config.with_overrides(summary.fixes[0]), "fine_tune") == suggested
        assert all(f"{suggested:.2g}" in text for text in texts)  # one rate, named alike everywhere
        if name == "shallow":
            assert all("cautious" in text for text in texts) and "Check setup" in summary.message
    else:
        assert suggested is None and result.verdict == "none" and summary is None
        assert [h.id for h in found] == ["lr_range_inconclusive"]
        assert found[0].fixes == [] and "Suggested" not in found[0].title


def test_lr_range_test_on_a_frozen_random_backbone_suggests_no_rate(data_dir):
    config = small_config(data_dir, **{"training.mode": "head_only", "training.head_epochs": 3})
    result = sanity.lr_range_test(config, steps=20)
    assert result.phase == "head" and result.suggested_learning_rate is None and result.verdict == "none"
    assert [h.id for h in result.hints] == ["frozen_random_backbone"]
    assert result.hints[0].fixes == [{"training.mode": "from_scratch"}]
    texts, summary = range_texts(result, result.hints)
    assert summary is None and not any("Suggested" in text or "try" in text for text in texts)
