"""The Data panel checks what training would check, in the background, and lists it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from gui.panels.data import DataPanel
from tests.helpers import make_tiny_dataset
from tests.test_data_check import make_problem_folder
from training.api import default_config
from training.data import check as check_module

TIMEOUT_MS = 20000


@pytest.fixture
def panel(qtbot):
    widget = DataPanel()
    qtbot.addWidget(widget)
    widget.resize(450, 1400)
    widget.show()
    yield widget
    widget.checker.cancel()


def load_folder(panel: DataPanel, root, **settings) -> None:
    overrides = {"data.dir": str(root), **{f"data.{k}": v for k, v in settings.items()}}
    panel.load(default_config().with_overrides(overrides))


@pytest.fixture
def decoded_paths(monkeypatch):
    """Every path the check decodes, in order; each decode made slower by ``delay[0]`` s so
    that a check lasts long enough to be watched (the decoding itself is the real one)."""
    decoded: list[str] = []
    delay = [0.0]
    lock = threading.Lock()
    real = check_module.load_image

    def load_image(path, size=None):
        with lock:
            decoded.append(str(path))
        time.sleep(delay[0])
        return real(path, size)

    monkeypatch.setattr(check_module, "load_image", load_image)
    return decoded, delay


def test_the_panel_lists_what_training_would_skip_small_classes_and_copies(qtbot, panel, tmp_path):
    root, problems = make_problem_folder(tmp_path)
    load_folder(panel, root)

    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)

    assert "4 classes, 93 images; 0 skipped" in panel.summary.text()  # the scan counts cut.png
    summary = panel.check_summary.text()
    assert panel.check_summary.isVisible() and not panel.check_progress.isVisible()
    assert summary.startswith("Checked 93 images as training reads them: 1 image cannot be decoded")
    assert "1 class has few validation images" in summary
    assert "1 validation image is a copy of a training image" in summary
    rows = panel.findings.texts()
    assert panel.findings.isVisible()
    assert "Cannot be decoded: training skips these (1)" in rows
    assert any(row.startswith("square/cut.png - truncated") for row in rows)
    assert "Classes with few validation images (1)" in rows
    assert any(row.startswith("'star': 1 training and 1 validation image") and "Validation share" in row
               for row in rows)
    assert "Same picture in training and validation (1)" in rows
    train = problems["train_copy"].removeprefix(str(root) + "/")
    validation = problems["validation_copy"].removeprefix(str(root) + "/")
    assert f"training: {train}" in rows
    assert f"validation: {validation} (identical file)" in rows
    words = summary + "\n".join(rows)
    assert "data." not in words and "`" not in words  # plain words, no config keys


def test_rows_are_copied_with_full_paths(qtbot, panel, tmp_path):
    root, problems = make_problem_folder(tmp_path)
    load_folder(panel, root)
    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)
    tree = panel.findings
    group = tree.topLevelItem(0)
    group.child(0).setSelected(True)

    tree.copy_selection()

    assert QGuiApplication.clipboard().text().startswith(problems["truncated"] + "\ttruncated")
    tree.clearSelection()
    tree.copy_selection()  # nothing selected: everything
    copied = QGuiApplication.clipboard().text()
    assert problems["train_copy"] in copied and problems["validation_copy"] in copied


def test_a_healthy_folder_reports_no_problems(qtbot, panel, tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=30, size=32)
    load_folder(panel, root)

    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)

    assert panel.check_summary.text() == "Checked 60 images as training reads them: no problems found."
    assert not panel.findings.isVisible()


def test_progress_shows_while_the_check_runs_off_the_gui_thread(qtbot, panel, tmp_path, decoded_paths):
    decoded, delay = decoded_paths
    root, _ = make_problem_folder(tmp_path)
    delay[0] = 0.03  # 93 images on 2 threads: about 1.4 s
    load_folder(panel, root)
    qtbot.waitUntil(lambda: panel.scan is not None, timeout=TIMEOUT_MS)
    panel.checker.cancel()  # the check the scan started: this test starts its own

    started = time.monotonic()
    panel.start_check()
    assert time.monotonic() - started < 0.5  # the GUI thread only starts it

    bar = panel.check_progress
    qtbot.waitUntil(lambda: bar.isVisible() and 0 < bar.value() < bar.maximum(), timeout=TIMEOUT_MS)
    assert bar.maximum() == 93
    assert bar.format() == "Checking 93 images… %p %"
    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)
    assert not bar.isVisible()
    assert set(panel.scan.files) <= set(decoded)


def test_a_new_folder_stops_the_running_check(qtbot, panel, tmp_path, decoded_paths):
    decoded, delay = decoded_paths
    first, _ = make_problem_folder(tmp_path, name="first")
    second = make_tiny_dataset(tmp_path, classes=2, per_class=30, size=32, name="second")
    delay[0] = 0.05  # the first folder alone would take over 2 s
    shown = []
    panel.checked.connect(shown.append)
    load_folder(panel, first)
    qtbot.waitUntil(lambda: panel.check_progress.isVisible() and len(decoded) > 0, timeout=TIMEOUT_MS)

    delay[0] = 0.0
    panel.set_folder(str(second))

    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)
    assert [check.files for check in shown] == [60]  # the first folder's result never showed
    assert panel.check_summary.text() == "Checked 60 images as training reads them: no problems found."
    # The checks share one thread: the first one had ended before the second began.
    from_first = [path for path in decoded if path.startswith(str(first) + "/")]
    assert 0 < len(from_first) < 93  # it stopped at a block's end rather than ran to its end


def test_a_new_split_checks_again_without_decoding_again(qtbot, panel, tmp_path, decoded_paths):
    decoded, delay = decoded_paths
    root, _ = make_problem_folder(tmp_path)
    load_folder(panel, root)
    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)
    first = panel.check
    decodes = len(decoded)

    assert first.small_classes[0].needed == 25

    panel.bindings["data.validation_split"].widget.setValue(0.5)

    qtbot.waitUntil(lambda: panel.check is not first and panel.check is not None, timeout=TIMEOUT_MS)
    assert [(small.name, small.needed) for small in panel.check.small_classes] == [("star", 10)]
    assert len(decoded) == decodes  # the images were decoded once, for the first check
    second = panel.check
    panel.load(default_config().with_overrides({"data.dir": str(root), "data.validation_split": 0.5}))
    qtbot.waitUntil(lambda: panel.check is not None and panel.check is not second, timeout=TIMEOUT_MS)
    assert len(decoded) == decodes  # a rescan of the unchanged folder: nothing decoded again
    assert panel.findings.isVisible()

    delay[0] = 0.02
    panel.bindings["data.image_size"].widget.setValue(64)
    qtbot.waitUntil(lambda: panel.check_progress.isVisible(), timeout=TIMEOUT_MS)
    # The findings of the old settings are gone while the new ones are being found.
    assert panel.check is None and not panel.findings.isVisible() and not panel.check_summary.isVisible()
    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)
    assert len(decoded) >= 2 * decodes  # a new size decodes anew


def test_a_split_that_cannot_be_planned_is_said_in_the_tabs_words(qtbot, panel, tmp_path):
    root, _ = make_problem_folder(tmp_path)
    other = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, name="validation")
    load_folder(panel, root, validation_dir=str(other))

    qtbot.waitUntil(lambda: panel.check is not None, timeout=TIMEOUT_MS)

    summary = panel.check_summary.text()
    assert "1 image cannot be decoded" in summary  # every image is still checked
    assert "The split cannot be planned: The validation folder" in summary
    assert "missing from the validation folder: star, triangle" in summary
    assert "Validation folder (Data tab)" in summary and "data.validation_dir" not in summary


def test_the_planned_split_shows_the_test_images_beside_training_and_validation(qtbot, panel, tmp_path):
    root = make_tiny_dataset(tmp_path, classes=3, per_class=20, size=32)
    load_folder(panel, root, validation_split=0.2, test_split=0.25)
    split = panel.split_summary

    qtbot.waitUntil(lambda: split.isVisible() and "test" in split.text(), timeout=TIMEOUT_MS)

    assert split.text().startswith("Planned: 33 training, 12 validation and 15 test images.")
    assert "kept out of training and out of choosing the best epoch" in split.text()
    assert "circle: 11 training, 4 validation, 5 test" in split.toolTip()
    # The test controls sit in the split's group, next to the validation ones.
    group = panel.findChild(QWidget, "dataSplitGroup")
    assert panel.bindings["data.test_split"].widget in group.findChildren(QWidget)
    assert panel.bindings["data.test_dir"].widget in group.findChildren(QWidget)

    panel.bindings["data.test_split"].widget.setValue(0.0)

    qtbot.waitUntil(lambda: "test" not in split.text(), timeout=TIMEOUT_MS)
    assert split.text() == "Planned: 48 training and 12 validation images."
    assert panel.values()["data.test_split"] == 0.0 and panel.values()["data.test_dir"] is None


def test_a_test_folder_is_planned_from_the_folder(qtbot, panel, tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=10, size=32)
    test = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, name="test")
    load_folder(panel, root)
    qtbot.waitUntil(lambda: panel.split_summary.isVisible(), timeout=TIMEOUT_MS)

    edit = panel.bindings["data.test_dir"].widget
    qtbot.keyClicks(edit, str(test))
    qtbot.keyClick(edit, Qt.Key.Key_Return)  # typed and confirmed, as a person does

    qtbot.waitUntil(lambda: "6 test" in panel.split_summary.text(), timeout=TIMEOUT_MS)
    assert panel.split_summary.text().startswith("Planned: 16 training, 4 validation and 6 test images.")


def test_a_test_image_that_copies_a_training_image_is_named_as_a_test_image(qtbot, panel, tmp_path):
    import shutil

    from training import api
    from training.config import DataConfig

    root = make_tiny_dataset(tmp_path, classes=2, per_class=10, size=32)
    test = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, seed=5, name="test")
    scan = api.scan_folder(root)
    plan = api.plan_split(scan, DataConfig(dir=str(root), test_dir=str(test)))
    trained = scan.files[plan.train_index[0]]
    shutil.copyfile(trained, test / Path(trained).parent.name / "copied.png")

    load_folder(panel, root, test_dir=str(test))

    qtbot.waitUntil(lambda: panel.check is not None and "test image" in panel.check_summary.text(),
                    timeout=TIMEOUT_MS)
    assert "1 test image is a copy of a training image" in panel.check_summary.text()
    rows = panel.findings.texts()
    assert "Same picture in training and test (1)" in rows
    assert any(row.startswith("test: ") and "copied.png (identical file)" in row for row in rows)
