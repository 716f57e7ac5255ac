"""Training progress on the terminal: epoch and batch bars with the latest validation accuracy."""

from __future__ import annotations

import keras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichProgress(keras.callbacks.Callback):
    """Epoch and batch bars, with the latest validation accuracy, on the terminal."""

    def __init__(self, epochs: int, steps: int, quiet: bool = False) -> None:
        super().__init__()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            disable=quiet,
        )
        self.epochs, self.steps = epochs, steps

    def on_train_begin(self, logs=None):
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs ", total=self.epochs, status="")
        self.batch_task = self.progress.add_task("batches", total=self.steps, status="")

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.reset(self.batch_task, total=self.steps, status="")

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update(self.batch_task, completed=batch + 1, status=f"loss {float(logs['loss']):.3f}")

    def on_epoch_end(self, epoch, logs=None):
        validation = f"val acc {logs['val_accuracy']:.4f}  " if "val_accuracy" in logs else ""  # none with --split all
        status = f"{validation}loss {logs['loss']:.3f}"
        self.progress.update(self.epoch_task, completed=epoch + 1, status=status)

    def on_train_end(self, logs=None):
        self.progress.stop()
