"""Seconds per training epoch of one network under each installed Keras backend, on this machine.

The trainer's loop (``trainer.training.train_loop``: fresh augmented arrays each epoch,
``train_on_batch``) trains the same network, from the same seed, on the same Dataset_1 split
under TensorFlow, JAX and torch, each in its own process (Keras picks its backend at import).
It prints seconds per epoch (epochs after the first, which includes compilation) and the
validation accuracy reached, which should agree across backends up to numerical noise.

    python benchmarks/keras_backends.py data/dataset1.npz --epochs 4
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def worker(dataset: str, arch: str, epochs: int, augment: str) -> dict:
    import keras
    import numpy as np

    from trainer.augment import Augmentation
    from trainer.dataset import SpectraDataset
    from trainer.model import compile_model, make_model
    from trainer.splits import make_split
    from trainer.training import epoch_batches, train_loop

    data = SpectraDataset.load(dataset)
    split = make_split("grouped", data.mineral, data.specimen, 0)
    classes = sorted(set(data.mineral[np.concatenate([split.train, split.val, split.test])].tolist()))
    labels = data.labels(classes)
    keras.utils.set_random_seed(0)
    model = compile_model(make_model(arch, len(classes)), 2e-3, 0.1)
    augmentation = Augmentation.parse(augment)
    X, y = data.X[split.train], labels[split.train]
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    history = train_loop(
        model,
        lambda epoch: epoch_batches(X, y, len(classes), 64, augmentation, 0, epoch),
        validation=(data.X[split.val, :, None], keras.utils.to_categorical(labels[split.val], len(classes))),
        epochs=epochs,
        callbacks=[Clock()],
    )
    return {
        "backend": keras.backend.backend(),
        "seconds_per_epoch": float(np.median(times[1:])) if len(times) > 1 else times[0],
        "first_epoch_seconds": times[0],
        "val_accuracy": history["val_accuracy"][-1],
        "train_spectra": int(len(X)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="dataset file from `trainer prepare` (Dataset_1)")
    parser.add_argument("--arch", default="resnet1d")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--augment", default="physical")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(str(args.dataset), args.arch, args.epochs, args.augment)))
        return
    rows: list[tuple[str, dict | None]] = []
    for backend, module in BACKENDS.items():
        if importlib.util.find_spec(module) is None:
            rows.append((backend, None))
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        child = subprocess.run(
            [sys.executable, __file__, str(args.dataset), "--arch", args.arch, "--epochs", str(args.epochs),
             "--augment", args.augment, "--worker"],
            capture_output=True, text=True, env=env,
        )
        if child.returncode != 0:
            rows.append((backend, {"error": child.stderr.strip().splitlines()[-1]}))
            continue
        rows.append((backend, json.loads(child.stdout.strip().splitlines()[-1])))
    cores = os.cpu_count()
    print(f"{args.arch}, Dataset_1 grouped split, batch 64, augment {args.augment}, {args.epochs} epochs, {cores} cores")
    print(f"{'backend':<12} {'s/epoch':>8} {'1st epoch s':>12} {'val acc':>8}  note")
    for backend, r in rows:
        if r is None:
            print(f"{backend:<12} {'':>8} {'':>12} {'':>8}  not installed")
        elif "error" in r:
            print(f"{backend:<12} {'':>8} {'':>12} {'':>8}  failed: {r['error']}")
        else:
            print(f"{backend:<12} {r['seconds_per_epoch']:>8.1f} {r['first_epoch_seconds']:>12.1f} {r['val_accuracy']:>8.4f}  {r['train_spectra']} training spectra")


if __name__ == "__main__":
    main()
