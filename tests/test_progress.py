"""The terminal listener: a progress bar on a TTY, epoch lines always, never a crash."""

from __future__ import annotations

import io

from training.cli.progress import ProgressPrinter, format_duration
from training.events import BatchEnd, EpochEnd, Failed, Finished, PhaseChanged


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _batch(batch: int) -> BatchEnd:
    return BatchEnd(phase="head", epoch=1, batch=batch, batches=10, step=batch, loss=0.5,
                    accuracy=0.75, learning_rate=1e-3, images_per_second=123.0, eta_seconds=75)


def test_bar_shows_phase_epoch_batch_loss_accuracy_speed_and_eta():
    stream = FakeTTY()
    printer = ProgressPrinter(stream)
    printer(PhaseChanged(phase="head", epochs=2, first_epoch=1, steps_per_epoch=10, learning_rate=1e-3,
                         trainable_weights=100, planned_epochs=5))
    printer(_batch(4))
    text = stream.getvalue()
    assert "[head] epoch 1/5 batch 4/10" in text
    assert "loss 0.5000" in text and "acc 0.750" in text and "123 img/s" in text and "ETA 1:15" in text


def test_no_bar_when_not_a_terminal_but_epoch_lines_and_results():
    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    printer(_batch(4))
    assert stream.getvalue() == ""
    printer(EpochEnd(phase="head", epoch=1, epochs=5, loss=0.5, accuracy=0.7, val_loss=0.6,
                     val_accuracy=0.65, learning_rate=1e-3, seconds=2.0, images_per_second=50.0,
                     is_best=True))
    printer(Finished(run_dir="/runs/x", stop_reason="completed", best_epoch=1,
                     best_metrics={"val_accuracy": 0.65, "val_loss": None}, seconds=3661))
    printer(Failed(message="disk full"))
    text = stream.getvalue()
    assert "epoch 1/5" in text and "* best" in text
    assert "Finished (completed) in 1:01:01" in text and "val_loss nan" in text
    assert "error: disk full" in text


def test_format_duration():
    assert format_duration(59) == "0:59"
    assert format_duration(3600) == "1:00:00"
    assert format_duration(float("inf")) == "?"
