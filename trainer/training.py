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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import keras
import numpy as np

from trainer.augment import Augmentation, augment_batch
from trainer.dataset import SpectraDataset
from trainer.errors import ConfigError, TrainerError
from trainer.model import ARCHITECTURES, BN_MOMENTUM, compile_model, make_model
from trainer.progress import RichProgress
from trainer.splits import PROTOCOLS, Split, make_split

CONFIG = "config.json"
LABELS = "labels.json"
SPLIT = "split.npz"
WEIGHTS = "model.weights.h5"
HISTORY = "history.json"
EPOCH_LOG = "epochs.csv"  # written as training goes, to follow a long run
SCHEDULES = ("constant", "cosine")


class RunError(TrainerError):
    """A run folder that is missing, incomplete or does not match its dataset."""


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of one training run; the defaults are the paper's."""

    protocol: str = "random"
    seed: int = 0
    arch: str = "sang2021"
    width: float = 1.0
    bn_momentum: float = BN_MOMENTUM
    learning_rate: float = 1e-4
    #: "constant" (the paper's) or "cosine": decay to zero over ``epochs``
    schedule: str = "constant"
    label_smoothing: float = 0.0
    batch_size: int = 32
    epochs: int = 200
    patience: int = 30
    #: on-the-fly physical augmentation of training spectra (trainer.augment): "none", "physical", ...
    augment: str = "none"
    #: a run folder to start from (same dataset, split and width): continues a run cut short
    init_from: str | None = None
    #: the fair/poor set (trainer.field_set): its processed files of the specimens this run trains on join
    #: its training data (never a validation or test specimen's)
    extra_train: str | None = None
    #: seed of the initial weights, the batch order and the augmentation, where it should differ from the
    #: split's (members of an ensemble trained on one split); None: ``seed``
    init_seed: int | None = None
    #: which files of the fair/poor set join with ``extra_train``: "processed", or "processed,raw" (RAW files
    #: through the device's raw pipeline)
    extra_kinds: str = "processed"
    #: stop on the validation monitor and restore its best epoch's weights; False: train every epoch and keep the
    #: last, as the production fit (``--split all``, no validation) does: the grouped twin of a production fit
    early_stopping: bool = True
    #: how many times each fair/poor file joins the training data (>= 1): a few hundred field-quality spectra among
    #: thousands of excellent ones, weighted up
    extra_repeat: int = 1
    #: weight of a supervised contrastive loss (trainer.contrastive) on the network's L2-normalised embedding beside
    #: the cross-entropy, with batches of ``batch_size // SPECTRA_PER_MINERAL`` minerals drawn across specimens;
    #: 0: the cross-entropy alone, shuffled batches
    contrastive: float = 0.0

    @property
    def training_seed(self) -> int:
        return self.seed if self.init_seed is None else self.init_seed

    def __post_init__(self) -> None:
        """Refuse a recipe that cannot run before anything is written or trained (a typo under
        ``trainer repeat`` would otherwise fail every run of it)."""
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown split protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown learning-rate schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        for name in ("width", "learning_rate", "batch_size", "epochs", "patience"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1), not {self.label_smoothing}")
        try:
            Augmentation.parse(self.augment)
        except ValueError as exc:
            raise ConfigError(f"augmentation {self.augment!r}: {exc}") from None
        if self.protocol == "all" and self.patience < self.epochs:
            raise ConfigError(
                "--split all trains on every spectrum: there is no held-out data to stop early on, and stopping on "
                f"training data would be a lie; set --patience to --epochs ({self.epochs}) and fix --epochs from the grouped runs"
            )
        if self.init_seed is not None and self.init_seed == self.seed:
            raise ConfigError(
                f"--init-seed {self.init_seed} is the split's --seed: that trains the run --seed alone trains, not another "
                "ensemble member; give another init seed"
            )
        if self.extra_train is not None and not Path(self.extra_train).exists():
            raise ConfigError(f"--extra-train {self.extra_train}: no such file")
        kinds = self.extra_kinds.split(",")
        if not kinds or not set(kinds) <= {"processed", "raw"}:
            raise ConfigError(f"--extra-kinds {self.extra_kinds!r}: processed, raw or processed,raw")
        if self.extra_repeat < 1:
            raise ConfigError(f"--extra-repeat must be 1 or more, not {self.extra_repeat}")
        if self.extra_repeat > 1 and self.extra_train is None:
            raise ConfigError("--extra-repeat weights the fair/poor files of --extra-train; give --extra-train too")
        if self.contrastive < 0:
            raise ConfigError(f"--contrastive must be 0 or more, not {self.contrastive}")
        if self.contrastive and self.arch != "resnet1d":
            raise ConfigError(f"--contrastive needs the resnet1d network (its embedding layer), not {self.arch}")
        if self.contrastive and self.batch_size < 8:
            raise ConfigError("--contrastive needs --batch-size of at least 8 (minerals x 4 spectra each)")


#: FitConfig fields that pick a run's split rather than its recipe (a repeat's runs differ only in these)
SPLIT_FIELDS = ("protocol", "seed")


@dataclass(frozen=True)
class RunRecord:
    """What a run folder's ``config.json`` holds, typed: the dataset (path, content hash, summary), the recipe,
    the split's sizes and the classes it left out, how training went (epochs, best epoch, seconds, parameters,
    augmentation settings, device) and how many fair/poor spectra joined the training data."""

    dataset: str
    dataset_sha256: str
    dataset_summary: str
    fit: FitConfig
    n_classes: int
    split_sizes: dict[str, int]
    excluded_classes: list[str]
    epochs_run: int
    best_epoch: int
    train_seconds: float
    seconds_per_epoch: float
    parameters: int
    device: str
    augmentation: dict | None = None
    extra_training_spectra: int = 0

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: Path) -> RunRecord:
        """A record read back (older runs lack the later optional fields); one line naming the folder if it is not one."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{**{k: v for k, v in data.items() if k in known}, "fit": FitConfig(**data["fit"])})
        except (KeyError, TypeError) as exc:
            raise RunError(f"{where}: {CONFIG} is not a run record of this trainer ({exc})") from None


def epoch_batches(
    X: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    batch_size: int,
    augmentation: Augmentation | None,
    seed: int,
    epoch: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of shuffled training batches ``(x (b, GRID_SIZE, 1), one-hot y (b, n_classes))``.

    With an augmentation, every spectrum of the epoch is a fresh perturbed copy (seeded by the
    run's seed and the epoch); mixing partners come from ``X`` itself. Only training rows are
    ever passed here, so no copy of a training spectrum reaches validation.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(X))
    x = X[order] if augmentation is None else augment_batch(X[order], labels[order], augmentation, rng, X, labels)
    y = keras.utils.to_categorical(labels[order], n_classes).astype(np.float32)
    for start in range(0, len(X), batch_size):
        yield x[start : start + batch_size, :, None], y[start : start + batch_size]


def train_loop(
    model: keras.Model,
    batches: Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]],
    validation: tuple[np.ndarray, np.ndarray] | None,
    epochs: int,
    callbacks: list[keras.callbacks.Callback],
) -> dict[str, list[float]]:
    """``model.fit`` for data that change every epoch, driving the same Keras callbacks; returns the history.

    Keras' own route for such data (a ``PyDataset``) doubled the time per epoch on the 2-core CPU
    under TensorFlow (7 -> 14 ms per spectrum, measured); ``train_on_batch`` on arrays made
    afresh each epoch costs what ``fit`` on fixed arrays costs.
    """
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList([*callbacks, history], model=model, epochs=epochs)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(epochs):
        callback_list.on_epoch_begin(epoch)
        sums: dict[str, float] = {}
        seen = 0
        for step, (x, y) in enumerate(batches(epoch)):
            callback_list.on_train_batch_begin(step)
            logs = model.train_on_batch(x, y, return_dict=True)
            for name, value in logs.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(x)
            seen += len(x)
            callback_list.on_train_batch_end(step, logs)
        epoch_logs = {name: total / seen for name, total in sums.items()}
        if validation is not None:
            scores = model.evaluate(*validation, batch_size=256, verbose=0, return_dict=True)
            epoch_logs.update({f"val_{name}": float(value) for name, value in scores.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return history.history


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
    np.savez(run_dir / SPLIT, train=split.train, val=split.val, test=split.test)
    (run_dir / LABELS).write_text(json.dumps(classes, indent=0))

    augmentation = Augmentation.parse(config.augment)
    keras.utils.set_random_seed(config.training_seed)
    model = make_model(config.arch, len(classes), config.width, config.bn_momentum)
    if config.init_from:
        _check_same_run(load_run(config.init_from), classes, dataset, config)
        model.load_weights(Path(config.init_from) / WEIGHTS)
    steps = int(np.ceil(len(split.train) / config.batch_size))
    learning_rate = config.learning_rate
    X_train, y_train, specimen_train = dataset.X[split.train], labels[split.train], dataset.specimen[split.train].astype(str)
    extra = extra_training_rows(config, dataset, split, classes)
    if extra is not None:
        X_train = np.concatenate([X_train, extra[0]])
        y_train = np.concatenate([y_train, extra[1]])
        specimen_train = np.concatenate([specimen_train, extra[2]])
        steps = int(np.ceil(len(X_train) / config.batch_size))
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps * config.epochs)
    if config.contrastive:
        from trainer import contrastive

        trained = contrastive.compile_two_headed(model, learning_rate, config.contrastive, config.label_smoothing)
        monitor = "val_" + contrastive.ACCURACY

        def batches(epoch: int) -> Iterator[tuple[np.ndarray, Any]]:
            return contrastive.specimen_batches(
                X_train, y_train, specimen_train, len(classes), config.batch_size, augmentation, config.training_seed, epoch
            )

        def xy(rows: np.ndarray) -> tuple[np.ndarray, Any]:
            return dataset.X[rows, :, None], contrastive.targets(labels[rows], len(classes))
    else:
        trained = compile_model(model, learning_rate, config.label_smoothing)
        monitor = "val_accuracy"

        def batches(epoch: int) -> Iterator[tuple[np.ndarray, Any]]:
            return epoch_batches(X_train, y_train, len(classes), config.batch_size, augmentation, config.training_seed, epoch)

        def xy(rows: np.ndarray) -> tuple[np.ndarray, Any]:
            return dataset.X[rows, :, None], keras.utils.to_categorical(labels[rows], len(classes))

    stopper = early_stopper(config, monitor, has_validation=bool(len(split.val)))
    started = time.perf_counter()
    history = train_loop(
        trained,
        batches,
        validation=xy(split.val) if len(split.val) else None,
        epochs=config.epochs,
        callbacks=[
            *([stopper] if stopper else []),
            keras.callbacks.CSVLogger(str(run_dir / EPOCH_LOG)),
            RichProgress(config.epochs, steps, quiet),
        ],
    )
    seconds = time.perf_counter() - started
    if config.contrastive:  # the run record names them as every run does: accuracy, val_accuracy, and the loss term
        from trainer.contrastive import history_names

        history = history_names(history)
    # save from an uncompiled twin: the weights alone, without the optimizer's slots (a third of the size)
    plain = make_model(config.arch, len(classes), config.width, config.bn_momentum)
    plain.set_weights(model.get_weights())
    plain.save_weights(run_dir / WEIGHTS)

    epochs_run = len(history["loss"])
    record = RunRecord(
        dataset=str(Path(dataset_path).resolve()),
        dataset_sha256=dataset.meta["content_sha256"],
        dataset_summary=dataset.summary(),
        fit=config,
        n_classes=len(classes),
        split_sizes={k: int(len(v)) for k, v in split.as_arrays().items()},
        excluded_classes=list(split.excluded_classes),
        epochs_run=epochs_run,
        best_epoch=int(stopper.best_epoch) + 1 if stopper else epochs_run,
        train_seconds=round(seconds, 1),
        seconds_per_epoch=round(seconds / max(epochs_run, 1), 2),
        parameters=int(model.count_params()),
        device=device_description(),
        augmentation=augmentation.as_dict() if augmentation else None,
        extra_training_spectra=0 if extra is None else len(extra[1]),
    )
    (run_dir / CONFIG).write_text(json.dumps(record.as_json(), indent=2))
    (run_dir / HISTORY).write_text(json.dumps({k: [float(v) for v in vals] for k, vals in history.items()}))
    return run_dir


def early_stopper(config: FitConfig, monitor: str, has_validation: bool):  # -> keras.callbacks.EarlyStopping | None
    """The callback that stops on ``monitor`` and restores its best epoch's weights, or None where the last epoch is
    kept: without held-out data (``--split all``: FitConfig already refused a patience that would ask for it) or with
    ``--no-early-stopping`` (a production fit's grouped twin, whose figures are those of what ships)."""
    if not (has_validation and config.early_stopping):
        return None
    return keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=config.patience, restore_best_weights=True)


def extra_training_rows(
    config: FitConfig, dataset: SpectraDataset, split: Split, classes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(X (n, GRID_SIZE), labels (n,), specimens (n,))`` of the fair/poor set's files (``config.extra_kinds``) of
    the specimens this run trains on (``config.extra_train``), or None. A validation or test specimen's file never
    joins. Each file appears ``config.extra_repeat`` times."""
    if config.extra_train is None:
        return None
    from trainer.field_set import load_field_set

    field = load_field_set(config.extra_train)
    rows = np.tile(field.training_rows(dataset.specimen[split.train], classes, kinds=tuple(config.extra_kinds.split(","))), config.extra_repeat)
    index = {m: i for i, m in enumerate(classes)}
    return field.X[rows], np.array([index[m] for m in field.mineral[rows]], dtype=np.int64), field.specimen[rows].astype(str)


def _check_same_run(start: Run, classes: list[str], dataset: SpectraDataset, config: FitConfig) -> None:
    """``--init-from`` continues a run only on the same data, classes, network and split."""
    same = (start.classes, start.config.dataset_sha256, start.fit_config.arch, start.fit_config.width, start.split.protocol, start.split.seed)
    if same != (classes, dataset.meta["content_sha256"], config.arch, config.width, config.protocol, config.seed):
        raise RunError(f"{start.path}: not the same dataset, classes, architecture, width, split and seed as this run; cannot start from it")


@dataclass
class Run:
    """A finished run folder, read back."""

    path: Path
    config: RunRecord
    classes: list[str]
    split: Split
    history: dict

    @property
    def fit_config(self) -> FitConfig:
        return self.config.fit

    def build_trained_model(self) -> keras.Model:
        model = make_model(self.fit_config.arch, len(self.classes), self.fit_config.width, self.fit_config.bn_momentum)
        model.load_weights(self.path / WEIGHTS)
        return model

    def load_dataset(self, dataset_path: str | Path | None = None) -> SpectraDataset:
        """The run's dataset, refused if its content is not what the run was trained on."""
        path = Path(dataset_path or self.config.dataset)
        dataset = SpectraDataset.load(path)
        if dataset.meta["content_sha256"] != self.config.dataset_sha256:
            raise RunError(f"{path}: dataset content differs from the one run {self.path} was trained on")
        return dataset


def check_one_split(runs: list[Run]) -> None:
    """An ensemble's members must share dataset, classes and split; only their initial weights may differ."""
    first = runs[0]
    for run in runs[1:]:
        if (run.config.dataset_sha256, run.classes, run.split.protocol, run.split.seed) != (
            first.config.dataset_sha256, first.classes, first.split.protocol, first.split.seed
        ):
            raise RunError(f"{run.path}: not the same dataset, classes and split as {first.path}; cannot be one ensemble")


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    missing = [name for name in (CONFIG, LABELS, SPLIT, WEIGHTS, HISTORY) if not (run_dir / name).is_file()]
    if missing:
        raise RunError(f"{run_dir}: incomplete run folder, missing {', '.join(missing)}")
    config = RunRecord.from_json(json.loads((run_dir / CONFIG).read_text()), run_dir)
    with np.load(run_dir / SPLIT) as parts:
        split = Split(config.fit.protocol, config.fit.seed, parts["train"], parts["val"], parts["test"], tuple(config.excluded_classes))
    return Run(
        path=run_dir,
        config=config,
        classes=json.loads((run_dir / LABELS).read_text()),
        split=split,
        history=json.loads((run_dir / HISTORY).read_text()),
    )
