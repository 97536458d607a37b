"""The data check (``training.api.check_data``): what a run would find wrong with a folder,
found before it starts and without TensorFlow; and that the run agrees with it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import make_tiny_dataset, write_broken_files
from training import api
from training.config import DataConfig
from training.data import check as check_module
from training.data.check import decode_problem
from training.data.errors import CheckStopped
from training.diagnostics import data_hints
from training.diagnostics.thresholds import VAL_MIN_PER_CLASS


def write_truncated_png(path: Path, size: int = 32) -> Path:
    """A PNG cut in half: its header reads (the scan counts it), its pixels do not."""
    pixels = np.random.default_rng(7).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_problem_folder(tmp_path: Path, name: str = "data") -> tuple[Path, dict[str, str]]:
    """Three healthy classes of 30 images, plus: a truncated PNG in 'square', a class 'star'
    of 2 images, and a validation image of 'circle' that is a byte copy of a training image
    (chosen from the engine's own split plan, so it is in validation whatever the seed).

    Returns:
        The folder, and the problem files by kind ("truncated", "train_copy", "validation_copy").
    """
    root = make_tiny_dataset(tmp_path, classes=3, per_class=30, size=32, name=name)
    truncated = write_truncated_png(root / "square" / "cut.png")
    (root / "star").mkdir()
    for index in range(2):
        pixels = np.random.default_rng(index).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "star" / f"star_{index}.png")
    scan = api.scan_folder(root)
    plan = api.plan_split(scan, DataConfig(dir=str(root)))
    circle = scan.classes.index("circle")
    train = next(scan.files[i] for i in plan.train_index if scan.labels[i] == circle)
    validation = next(scan.files[i] for i in plan.validation_index if scan.labels[i] == circle)
    shutil.copyfile(train, validation)  # same names, so the same plan: only the bytes changed
    return root, {"truncated": str(truncated), "train_copy": train, "validation_copy": validation}


def test_a_truncated_png_counted_by_the_scan_is_found_by_the_check(tmp_path):
    root, problems = make_problem_folder(tmp_path)
    scan = api.scan_folder(root)
    assert problems["truncated"] in scan.files  # the header check lets it through

    check = api.check_data(scan, DataConfig(dir=str(root)))

    assert [path for path, _ in check.broken] == [problems["truncated"]]
    assert "truncated" in check.broken[0][1]
    assert check.files == len(scan.files)


def test_a_class_of_two_images_is_listed_as_the_run_hint_names_it(tmp_path):
    root, _ = make_problem_folder(tmp_path)
    scan = api.scan_folder(root)
    data = DataConfig(dir=str(root))

    check = api.check_data(scan, data)

    assert [small.name for small in check.small_classes] == ["star"]
    star = check.small_classes[0]
    assert (star.train_images, star.validation_images, star.minimum) == (1, 1, VAL_MIN_PER_CLASS)
    assert star.needed == 25  # 5 validation images at a validation share of 0.2
    # The run's own hint, at its start, names the same class for the same reason.
    plan = api.plan_split(scan, data)
    hint = data_hints.val_too_small(plan.train_counts, plan.validation_counts, None)
    assert hint is not None and hint.evidence["smallest_class"] == "star"


def test_a_class_with_a_validation_folder_needs_no_more_images_in_all(tmp_path):
    train = make_tiny_dataset(tmp_path, classes=2, per_class=8, size=32, name="train")
    validation = make_tiny_dataset(tmp_path, classes=2, per_class=6, size=32, name="validation", seed=1)
    for extra in sorted((validation / "square").iterdir())[:3]:
        extra.unlink()  # 'square' keeps 3 validation images
    data = DataConfig(dir=str(train), validation_dir=str(validation))

    check = api.check_data(api.scan_folder(train), data)

    assert [(s.name, s.train_images, s.validation_images, s.needed) for s in check.small_classes] == [
        ("square", 8, 3, None)]
    assert check.files == 16 + 9  # the validation folder's images are decoded too


def test_a_copy_across_the_planned_split_is_found_as_the_run_finds_it(tmp_path):
    root, problems = make_problem_folder(tmp_path)
    scan = api.scan_folder(root)
    data = DataConfig(dir=str(root))

    check = api.check_data(scan, data)

    groups = check.duplicate_groups
    assert [(group.train_file, group.copies) for group in groups] == [
        (problems["train_copy"], ((problems["validation_copy"], "identical"),))]
    # The run's data_leakage hint, on the run's own training and validation files.
    plan = api.plan_split(scan, data)
    hints = data_hints.data_leakage([scan.files[i] for i in plan.train_index],
                                    [scan.files[i] for i in plan.validation_index])
    pairs = [(p["train"], p["validation"]) for hint in hints if hint.id == "data_leakage"
             for p in hint.evidence["pairs"]]
    assert pairs == [(problems["train_copy"], problems["validation_copy"])]


def test_the_files_the_check_flags_are_exactly_those_a_run_skips(tmp_path):
    """The same folder through both paths: the window's scan and check, and the engine's
    ``prepare_data`` with every image of both pipelines read once."""
    root, problems = make_problem_folder(tmp_path)
    broken = write_broken_files(root / "triangle")  # empty, text named .png, truncated JPEG
    data = DataConfig(dir=str(root), image_size=32, batch_size=8)
    scan = api.scan_folder(root)

    check = api.check_data(scan, data)
    flagged = {path for path, _ in scan.skipped} | {path for path, _ in check.broken}

    from training.data.pipeline import prepare_data

    bundle = prepare_data(data, 32, seed=data.seed)
    for _ in bundle.train:
        pass
    for _ in bundle.validation:
        pass
    skipped_by_run = {path for path, _ in bundle.scan.skipped} | set(bundle.decode_failures)
    assert flagged == skipped_by_run
    assert {problems["truncated"], str(broken["truncated_jpeg"]), str(broken["zero_byte"])} <= flagged


def test_decoding_is_the_pipelines_own(tmp_path):
    good = make_tiny_dataset(tmp_path, classes=2, per_class=1, size=32)
    path = next((good / "circle").iterdir())
    truncated = write_truncated_png(tmp_path / "cut.png")

    assert decode_problem(str(path), 32) is None
    assert "truncated" in decode_problem(str(truncated), 32)


def test_progress_is_reported_and_a_stop_ends_the_check(tmp_path):
    root, _ = make_problem_folder(tmp_path)
    scan = api.scan_folder(root)
    seen: list[tuple[str, int, int]] = []

    api.check_data(scan, DataConfig(dir=str(root)), on_progress=lambda *report: seen.append(report))

    decode = [(done, total) for stage, done, total in seen if stage == "decode"]
    assert decode[0] == (0, len(scan.files)) and decode[-1] == (len(scan.files), len(scan.files))
    assert [done for done, _ in decode] == sorted(done for done, _ in decode)
    assert any(stage == "duplicates" for stage, _, _ in seen)

    stop = threading.Event()
    stop.set()
    with pytest.raises(CheckStopped):
        api.check_data(scan, DataConfig(dir=str(root)), stop=stop)


def test_a_new_check_decodes_only_the_files_changed_since(tmp_path, monkeypatch):
    root, problems = make_problem_folder(tmp_path)
    scan = api.scan_folder(root)
    first = api.check_data(scan, DataConfig(dir=str(root)))
    decoded: list[str] = []
    real = check_module.load_image
    monkeypatch.setattr(check_module, "load_image",
                        lambda path, size=None: (decoded.append(path), real(path, size))[1])
    Image.new("RGB", (32, 32), (1, 2, 3)).save(problems["truncated"], "PNG")  # mended on disk

    again = api.check_data(api.scan_folder(root), DataConfig(dir=str(root), seed=7), known=first.decoded)

    assert decoded == [problems["truncated"]]  # the one file that changed
    assert again.broken == ()
    assert len(again.decoded) == len(scan.files)


def test_a_split_that_cannot_be_planned_still_decodes_every_image(tmp_path):
    root, problems = make_problem_folder(tmp_path)
    scan = api.scan_folder(root)

    check = api.check_data(scan, DataConfig(dir=str(root), validation_split=0.0))

    assert "validation" in check.plan_problem
    assert [path for path, _ in check.broken] == [problems["truncated"]]
    assert check.small_classes == () and check.duplicates is None


def test_the_check_imports_no_tensorflow(tmp_path):
    root, _ = make_problem_folder(tmp_path)
    code = ("import sys; from training import api; from training.config import DataConfig; "
            f"root = {str(root)!r}; "
            "check = api.check_data(api.scan_folder(root), DataConfig(dir=root)); "
            "assert check.broken and check.small_classes and check.duplicate_groups; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_test_image_that_copies_a_training_image_is_found_and_a_broken_test_file_too(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=8, size=32)
    test_dir = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, seed=5, name="test")
    scan = api.scan_folder(root)
    data = DataConfig(dir=str(root), test_dir=str(test_dir))
    plan = api.plan_split(scan, data)
    trained = scan.files[plan.train_index[0]]
    copy = test_dir / Path(trained).parent.name / "copied.png"
    shutil.copyfile(trained, copy)
    broken = write_truncated_png(test_dir / "circle" / "broken.png")

    check = api.check_data(scan, data)

    assert [(g.train_file, g.copies) for g in check.duplicate_groups] == [(trained, ((str(copy), "identical"),))]
    assert check.held_out_role(str(copy)) == "test"
    assert str(broken) in [path for path, _ in check.broken]
