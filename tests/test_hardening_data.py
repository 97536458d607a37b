"""Hostile data folders and image files: no code runs from an image, nothing hangs or crashes.

Each test stands for one class of attack on the data side (issue 8): a PostScript file
named like an image (Ghostscript), FIFOs and devices, folders nested past Python's
recursion limit, over-long or unreadable paths, an unusable validation setting, and file
names that are not UTF-8.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from PIL import EpsImagePlugin, Image

from tests.helpers import make_tiny_dataset
from training.config import DataConfig
from training.data.duplicates import exact_duplicates
from training.data.errors import DataError
from training.data.images import ImageLoadError, load_image, load_thumbnail, probe_image
from training.data.pipeline import prepare_data
from training.data.sample import resolve_data_dir
from training.data.scan import scan_folder
from training.files import display_path

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")
needs_gs = pytest.mark.skipif(shutil.which("gs") is None,
                              reason="Ghostscript (gs) is not installed: nothing could run the payload")


def _postscript(marker: Path) -> bytes:
    """An EPS file that, when rendered, writes ``marker`` and paints itself green."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n"
            b"/f (" + os.fsencode(marker) + b") (w) file def f (pwned) writestring f closefile\n"
            b"0 1 0 setrgbcolor 0 0 32 32 rectfill\nshowpage\n")


def _png(path: Path, colour=(200, 30, 30), size=16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, "PNG")
    return path


@pytest.fixture
def deep_folder():
    """``make(start, depth)``: ``start/d/d/.../d`` (``depth`` levels). Removed again after
    the test, bottom up: pytest's own clean-up of old temporary folders, like
    ``shutil.rmtree`` and ``os.makedirs``, recurses once per level and would fail on it."""
    made: list[Path] = []

    def make(start: Path, depth: int) -> Path:
        start.mkdir(parents=True, exist_ok=True)
        made.append(start / "d")
        folder = start
        for _ in range(depth):
            folder = folder / "d"
            folder.mkdir()
        return folder

    yield make
    for top in made:
        _remove_tree(top)


def _remove_tree(top: Path) -> None:
    """``shutil.rmtree`` without recursion."""
    folders, pending = [], [os.fspath(top)]
    while pending:
        current = pending.pop()
        folders.append(current)
        with os.scandir(current) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    os.unlink(entry.path)
    for folder in reversed(folders):
        os.rmdir(folder)


def _non_utf8_name(folder: Path, name: bytes) -> Path:
    """``folder/name`` for a byte name that is not UTF-8, or skips where the file system
    refuses such names."""
    try:
        with open(os.path.join(os.fsencode(folder), name), "wb"):
            pass
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


@pytest.fixture
def eps_opens(monkeypatch) -> list[str]:
    """Records every time Pillow's EPS plugin parses a file (it would hand it to Ghostscript)."""
    calls: list[str] = []
    real_open = EpsImagePlugin.EpsImageFile._open

    def recording_open(self):
        calls.append(str(getattr(self.fp, "name", "?")))
        return real_open(self)

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", recording_open)
    return calls


# -- 1. Ghostscript -----------------------------------------------------------------------
def test_a_postscript_file_named_png_is_refused_without_reaching_the_eps_decoder(tmp_path, eps_opens):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    eps = root / "circle" / "poster.png"
    eps.write_bytes(_postscript(tmp_path / "OUT"))

    scan = scan_folder(root)

    assert str(eps) not in scan.files
    assert "not one of the supported formats" in dict(scan.skipped)[str(eps)]
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(eps, 16)
    with pytest.raises(ImageLoadError, match="not an image"):
        load_thumbnail(eps, 16)
    assert probe_image(eps) is not None
    assert eps_opens == [], "the EPS plugin must never see a file"


def test_phone_photos_in_multi_picture_jpeg_still_load(tmp_path):
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (40, 20), (250, 10, 10)).save(
        path, "MPO", save_all=True, append_images=[Image.new("RGB", (40, 20), (0, 0, 250))])
    assert Image.open(path).format == "MPO"
    assert probe_image(path) is None
    image = load_image(path, 8)
    assert image.shape == (8, 8, 3) and image[4, 4, 0] > 200  # the first picture
    assert load_thumbnail(path, 10).shape == (5, 10, 3)


@needs_gs
def test_a_postscript_payload_never_runs_in_training_or_prediction_code(tmp_path):
    # Before the fix, this very file was rendered by gs: load_image returned a green image
    # and the marker file appeared.
    marker = tmp_path / "OUT"
    root = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    eps = root / "circle" / "poster.png"
    eps.write_bytes(_postscript(marker))

    scan = scan_folder(root)
    assert str(eps) not in scan.files
    for load in (lambda: load_image(eps, 16), lambda: load_image(eps), lambda: load_thumbnail(eps, 16)):
        with pytest.raises(ImageLoadError):
            load()
    assert not marker.exists(), "Ghostscript ran the PostScript file"


@needs_gs
def test_gui_thumbnails_never_render_postscript(tmp_path):
    pytest.importorskip("PySide6")
    from gui.panels.data import load_thumbnails

    marker = tmp_path / "OUT"
    eps = tmp_path / "poster.png"
    eps.write_bytes(_postscript(marker))
    good = _png(tmp_path / "good.png")

    thumbnails = load_thumbnails([("a", str(eps)), ("b", str(good))], 16)

    assert [path for _, path, _ in thumbnails] == [str(good)]
    assert not marker.exists(), "Ghostscript ran the PostScript file"


# -- 2. FIFOs and devices -----------------------------------------------------------------
@needs_fifo
@pytest.mark.timeout(30)
def test_a_fifo_in_a_class_folder_is_skipped_not_waited_on(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    fifo = root / "circle" / "pipe.png"
    os.mkfifo(fifo)

    for verify in (True, False):
        scan = scan_folder(root, verify=verify)
        assert str(fifo) not in scan.files
        assert dict(scan.skipped)[str(fifo)] == "not a regular file (named pipe); only image files are read"
    assert scan.counts() == {"circle": 2, "square": 2}
    for load in (lambda: load_image(fifo, 16), lambda: load_thumbnail(fifo, 16)):
        with pytest.raises(ImageLoadError, match="named pipe"):
            load()
    assert "named pipe" in probe_image(fifo)


@needs_fifo
@pytest.mark.timeout(30)
def test_links_to_a_fifo_or_a_device_are_refused(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    os.mkfifo(tmp_path / "pipe")
    links = {"to_pipe.png": tmp_path / "pipe", "to_zero.png": Path("/dev/zero")}
    if not Path("/dev/zero").exists():
        del links["to_zero.png"]
    for name, target in links.items():
        os.symlink(target, root / "square" / name)
    os.symlink(tmp_path / "gone.png", root / "square" / "dangling.png")

    skipped = dict(scan_folder(root).skipped)

    assert "named pipe" in skipped[str(root / "square" / "to_pipe.png")]
    assert "broken symbolic link" in skipped[str(root / "square" / "dangling.png")]
    if "to_zero.png" in links:
        assert "device" in skipped[str(root / "square" / "to_zero.png")]
        with pytest.raises(ImageLoadError, match="device"):
            load_image(root / "square" / "to_zero.png", 16)
    with pytest.raises(ImageLoadError, match="named pipe"):
        load_image(root / "square" / "to_pipe.png", 16)


@needs_fifo
@pytest.mark.timeout(30)
def test_duplicate_check_never_opens_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")  # the same size (0) on both sides: a candidate pair
    assert exact_duplicates([str(tmp_path / "a.png")], [str(tmp_path / "b.png")]) == []


# -- 3. Deep folders ----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_an_image_1100_folders_deep_is_found(tmp_path, deep_folder):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    deep = _png(deep_folder(root / "circle", 1100) / "deep.png")
    _png(root / "square" / "x" / ".hidden.png")

    scan = scan_folder(root)

    assert str(deep) in scan.files and scan.counts() == {"circle": 3, "square": 2}
    assert any(path.endswith(".hidden.png") and reason == "hidden file" for path, reason in scan.ignored)


def test_the_walk_is_top_down_with_folders_before_files(tmp_path):
    root = tmp_path / "data"
    for relative in ("a/1.png", "a/b/2.png", "a/b/c/3.png", "a/z/4.png", "a/0.png", "other/5.png"):
        _png(root / relative)
    for relative in ("a/.h.png", "a/b/.h.png", "a/b/c/.h.png", "a/z/.h.png"):
        (root / relative).write_bytes(b"")
    (root / "a" / ".git").mkdir()

    scan = scan_folder(root)

    assert [os.path.relpath(p, root) for p in scan.files] == [
        "a/0.png", "a/1.png", "a/b/2.png", "a/b/c/3.png", "a/z/4.png", "other/5.png"]
    # os.walk's order: each folder's subfolders, then its files, then down the first subfolder.
    assert [os.path.relpath(p, root) for p, _ in scan.ignored] == [
        "a/.git", "a/.h.png", "a/b/.h.png", "a/b/c/.h.png", "a/z/.h.png"]


# -- 4. Long names and unreadable folders ---------------------------------------------------
def test_a_path_component_over_255_bytes_is_a_data_error(tmp_path):
    too_long = "a" * 5000
    for folder in (too_long, tmp_path / too_long, tmp_path / too_long / "data"):
        with pytest.raises(DataError, match="longer than 255 bytes"):
            scan_folder(folder)
    root = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    with pytest.raises(DataError, match="validation folder.*longer than 255 bytes"):
        prepare_data(DataConfig(dir=str(root), validation_dir=str(tmp_path / too_long)), 16, seed=0)


def test_a_folder_that_cannot_be_entered_is_a_data_error(tmp_path, monkeypatch):
    # As root, chmod 000 stops nothing; make the system calls refuse as they do for a user.
    locked = tmp_path / "locked"
    make_tiny_dataset(locked, classes=2, per_class=2, size=16)
    real_stat, real_scandir = os.stat, os.scandir

    def refuse(path) -> None:
        if os.fsdecode(os.fspath(path)).startswith(str(locked)):
            raise PermissionError(13, "Permission denied", os.fspath(path))

    def guarded_stat(path, *args, **kwargs):
        refuse(path)
        return real_stat(path, *args, **kwargs)

    def guarded_scandir(path="."):
        refuse(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "stat", guarded_stat)
    monkeypatch.setattr(os, "scandir", guarded_scandir)
    with pytest.raises(DataError, match="cannot be reached .permission denied"):
        scan_folder(locked / "data")


def test_a_class_folder_that_cannot_be_read_is_skipped_with_the_reason(tmp_path, monkeypatch):
    root = make_tiny_dataset(tmp_path, classes=3, per_class=2, size=16)
    real_scandir = os.scandir

    def guarded_scandir(path="."):
        if os.fspath(path) == str(root / "square"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    scan = scan_folder(root)
    assert scan.classes == ["circle", "triangle"]
    assert dict(scan.skipped)[str(root / "square")] == "cannot read folder: Permission denied"


def test_the_builtin_sample_under_an_unusable_home_is_a_data_error(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    for home in (tmp_path / ("h" * 300), tmp_path / "a_file"):
        monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(home))
        with pytest.raises(DataError, match="Cannot write the built-in sample.*FINETUNE_STUDIO_HOME"):
            resolve_data_dir("builtin:shapes")
        with pytest.raises(DataError, match="Cannot write the built-in sample"):
            scan_folder("builtin:shapes")


# -- 5. No validation images ----------------------------------------------------------------
def test_an_empty_validation_folder_says_so(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=16)
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "half" / "circle").mkdir(parents=True)
    (tmp_path / "half" / "square").mkdir()

    for folder in (empty, tmp_path / "half"):
        config = DataConfig(dir=str(root), validation_dir=str(folder), validation_split=0.0)
        with pytest.raises(DataError) as info:
            prepare_data(config, 16, seed=0)
        message = str(info.value)
        assert f"The validation folder {folder} (`data.validation_dir`) has no usable images" in message
        assert "circle, square" in message and "single image" not in message


def test_a_blank_validation_dir_with_split_0_says_nothing_is_held_back(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=16)
    for blank in ("", "  "):
        config = DataConfig(dir=str(root), validation_dir=blank, validation_split=0.0)
        with pytest.raises(DataError) as info:
            prepare_data(config, 16, seed=0)
        message = str(info.value)
        assert "`data.validation_split` is 0 and no `data.validation_dir`" in message
        assert "Received: data.validation_split=0.0" in message and "single image" not in message
    # A blank folder with a split still means "split the training folder", as before.
    bundle = prepare_data(DataConfig(dir=str(root), validation_dir="", validation_split=0.5), 16, seed=0)
    assert bundle.validation_count == 3 and bundle.validation_scan is None


def test_a_validation_folder_with_one_class_names_the_missing_one(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=16)
    _png(tmp_path / "val" / "circle" / "a.png")
    with pytest.raises(DataError, match="missing from the validation folder: square"):
        prepare_data(DataConfig(dir=str(root), validation_dir=str(tmp_path / "val")), 16, seed=0)


# -- 6. File names that are not UTF-8 -------------------------------------------------------
def test_file_names_that_are_not_utf8_are_scanned_loaded_and_reported(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=16)
    odd = _non_utf8_name(root / "circle", b"\xff.png")
    _png(odd)
    broken = _non_utf8_name(root / "square", b"bad\xfe.png")  # empty: skipped with a reason

    bundle = prepare_data(DataConfig(dir=str(root), validation_split=0.3, batch_size=4), 16, seed=0)

    assert str(odd) in bundle.scan.files and str(broken) in dict(bundle.scan.skipped)
    assert load_image(odd, 8).shape == (8, 8, 3)
    assert load_image(os.fsencode(odd), 8).shape == (8, 8, 3)  # tf.data passes bytes
    images = sum(len(labels) for dataset in (bundle.train, bundle.validation) for _, labels in dataset)
    assert images == 7 and bundle.decode_failures == []
    report = bundle.report().to_dict()
    text = json.dumps(report, ensure_ascii=False)
    text.encode("utf-8")  # printable and writable as UTF-8: no lone surrogates left
    shown = json.loads(text)["skipped"][0]["path"]
    assert shown == display_path(broken) and shown.endswith("/square/bad\\xfe.png")


def test_a_class_folder_name_that_is_not_utf8_is_refused_with_the_reason(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    odd = os.path.join(os.fsencode(root), b"sq\xffuare")
    try:
        os.rename(os.fsencode(root / "square"), odd)
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    with pytest.raises(DataError, match=r"sq\\xffuare has a name that is not valid UTF-8.*Rename"):
        scan_folder(root)


def test_display_path_keeps_readable_names_unchanged():
    assert display_path("/data/ünïcode/猫.png") == "/data/ünïcode/猫.png"
    assert display_path(os.fsdecode(b"/data/\xff.png")) == "/data/\\xff.png"
    assert display_path(b"/data/\xff.png") == "/data/\\xff.png"
    assert display_path(Path("x")) == "x"


# -- everything at once, through the command line -------------------------------------------
@needs_fifo
@pytest.mark.timeout(300)
def test_train_and_predict_on_a_hostile_folder(tmp_path, capsys, deep_folder):
    from main import main
    from training.config import Config

    marker = tmp_path / "OUT"
    root = make_tiny_dataset(tmp_path, classes=2, per_class=4, size=32)
    (root / "circle" / "poster.png").write_bytes(_postscript(marker))
    os.mkfifo(root / "square" / "pipe.png")
    _png(deep_folder(root / "square", 1100) / "deep.png", colour=(30, 200, 30), size=32)
    config = tmp_path / "config.json"
    Config().with_overrides({
        "model.backbone": "SmallCNN", "model.weights": "none", "data.image_size": 32,
        "data.batch_size": 8, "training.head_epochs": 0, "training.fine_tune_epochs": 1,
        "training.fine_tune_layers": "all",
    }).save(config)
    run_dir = tmp_path / "run"

    code = main(["train", str(config), "--data", str(root), "--out", str(run_dir), "--quiet"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads((run_dir / "data_report.json").read_text(encoding="utf-8"))
    reasons = {Path(item["path"]).name: item["reason"] for item in report["skipped"]}
    assert "named pipe" in reasons["pipe.png"] and "supported formats" in reasons["poster.png"]
    assert report["train_images"] + report["validation_images"] == 9  # 8 shapes + the deep one

    code = main(["predict", str(run_dir), str(root / "circle" / "poster.png"),
                 str(root / "square" / "pipe.png"), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["poster.png", "pipe.png"]
    assert all("error" in line and "top" not in line for line in lines), lines
    assert not marker.exists(), "Ghostscript ran the PostScript file"
    assert stat.S_ISFIFO(os.stat(root / "square" / "pipe.png").st_mode)
