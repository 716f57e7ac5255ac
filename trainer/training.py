"""``trainer fit``: train the paper's network on a dataset split into a self-describing run folder.

A run folder holds everything needed to evaluate, export or reproduce the run:
``config.json`` (dataset path and hash, split protocol and seed, hyper-parameters, backend,
device), ``labels.json`` (class order of the model output), ``split.npz`` (row indices),
``model.weights.h5`` (the best epoch's weights), ``history.json`` (per-epoch curves).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trainer.dataset import SpectraDataset
from trainer.model import BN_MOMENTUM, build_model, compile_model
from trainer.splits import Split, make_split

CONFIG = "config.json"
LABELS = "labels.json"
SPLIT = "split.npz"
WEIGHTS = "model.weights.h5"
HISTORY = "history.json"
EPOCH_LOG = "epochs.csv"  # written as training goes, to follow a long run


class RunError(ValueError):
    """A run folder that is missing, incomplete or does not match its dataset."""


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of one training run; the defaults are the paper's."""

    protocol: str = "random"
    seed: int = 0
    width: float = 1.0
    bn_momentum: float = BN_MOMENTUM
    learning_rate: float = 1e-4
    batch_size: int = 32
    epochs: int = 200
    patience: int = 30
    #: a run folder to start from (same dataset, split and width): continues a run cut short
    init_from: str | None = None


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
        status = f"val acc {logs['val_accuracy']:.4f}  loss {logs['loss']:.3f}"
        self.progress.update(self.epoch_task, completed=epoch + 1, status=status)

    def on_train_end(self, logs=None):
        self.progress.stop()


def device_description() -> str:
    """Backend and the device it computes on, for the run record and the results table."""
    backend = keras.backend.backend()
    device = "cpu"
    if backend == "jax":
        import jax

        device = str(jax.devices()[0])
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = "gpu" if gpus else "cpu"
    elif backend == "torch":
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"keras {keras.__version__} / {backend} on {device} ({platform.machine()}, {platform.node()})"


def fit(dataset_path: str | Path, run_dir: str | Path, config: FitConfig, quiet: bool = False) -> Path:
    """Split, train with early stopping on validation accuracy, and write the run folder."""
    dataset = SpectraDataset.load(dataset_path)
    split = make_split(config.protocol, dataset.mineral, dataset.specimen, config.seed)
    classes = sorted(set(dataset.mineral[np.concatenate([split.train, split.val, split.test])].tolist()))
    labels = dataset.labels(classes)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / SPLIT, **split.as_arrays())
    (run_dir / LABELS).write_text(json.dumps(classes, indent=0))

    keras.utils.set_random_seed(config.seed)
    model = build_model(len(classes), config.width, config.bn_momentum)
    if config.init_from:
        start = load_run(config.init_from)
        same = (start.classes, start.config["dataset_sha256"], start.fit_config.width, start.split.protocol, start.split.seed)
        if same != (classes, dataset.meta["content_sha256"], config.width, config.protocol, config.seed):
            raise RunError(f"{config.init_from}: not the same dataset, classes, width, split and seed as this run; cannot start from it")
        model.load_weights(start.path / WEIGHTS)
    compile_model(model, config.learning_rate)

    def xy(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return dataset.X[rows, :, None], keras.utils.to_categorical(labels[rows], len(classes))

    x_train, y_train = xy(split.train)
    steps = int(np.ceil(len(split.train) / config.batch_size))
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=config.patience, restore_best_weights=True
    )
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=xy(split.val) if len(split.val) else None,
        callbacks=[stopper, keras.callbacks.CSVLogger(str(run_dir / EPOCH_LOG)), RichProgress(config.epochs, steps, quiet)],
        shuffle=True,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    # save from an uncompiled twin: the weights alone, without the optimizer's slots (a third of the size)
    plain = build_model(len(classes), config.width, config.bn_momentum)
    plain.set_weights(model.get_weights())
    plain.save_weights(run_dir / WEIGHTS)

    epochs_run = len(history.history["loss"])
    record = {
        "dataset": str(Path(dataset_path).resolve()),
        "dataset_sha256": dataset.meta["content_sha256"],
        "dataset_summary": dataset.summary(),
        "fit": asdict(config),
        "n_classes": len(classes),
        "split_sizes": {k: int(len(v)) for k, v in split.as_arrays().items()},
        "excluded_classes": list(split.excluded_classes),
        "epochs_run": epochs_run,
        "best_epoch": int(stopper.best_epoch) + 1,
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(epochs_run, 1), 2),
        "parameters": int(model.count_params()),
        "device": device_description(),
    }
    (run_dir / CONFIG).write_text(json.dumps(record, indent=2))
    (run_dir / HISTORY).write_text(json.dumps({k: [float(v) for v in vals] for k, vals in history.history.items()}))
    return run_dir


@dataclass
class Run:
    """A finished run folder, read back."""

    path: Path
    config: dict
    classes: list[str]
    split: Split
    history: dict

    @property
    def fit_config(self) -> FitConfig:
        return FitConfig(**self.config["fit"])

    def build_trained_model(self) -> keras.Model:
        model = build_model(len(self.classes), self.fit_config.width, self.fit_config.bn_momentum)
        model.load_weights(self.path / WEIGHTS)
        return model

    def load_dataset(self, dataset_path: str | Path | None = None) -> SpectraDataset:
        """The run's dataset, refused if its content is not what the run was trained on."""
        path = Path(dataset_path or self.config["dataset"])
        dataset = SpectraDataset.load(path)
        if dataset.meta["content_sha256"] != self.config["dataset_sha256"]:
            raise RunError(f"{path}: dataset content differs from the one run {self.path} was trained on")
        return dataset


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    missing = [name for name in (CONFIG, LABELS, SPLIT, WEIGHTS, HISTORY) if not (run_dir / name).is_file()]
    if missing:
        raise RunError(f"{run_dir}: incomplete run folder, missing {', '.join(missing)}")
    config = json.loads((run_dir / CONFIG).read_text())
    with np.load(run_dir / SPLIT) as parts:
        split = Split(
            config["fit"]["protocol"],
            config["fit"]["seed"],
            parts["train"],
            parts["val"],
            parts["test"],
            tuple(config.get("excluded_classes", ())),
        )
    return Run(
        path=run_dir,
        config=config,
        classes=json.loads((run_dir / LABELS).read_text()),
        split=split,
        history=json.loads((run_dir / HISTORY).read_text()),
    )
