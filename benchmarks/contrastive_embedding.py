"""A learned similarity across specimens: the classifier fine-tuned with a supervised contrastive loss, judged on
grouped-fair against the same run's own embedding (benchmarks/embedding_search.py) and its softmax.

For each grouped run (the fair-trained recipe): its network, from its trained weights, is trained ``--epochs`` more
as ``trainer fit --contrastive`` trains (trainer/contrastive.py): the supervised contrastive loss (Khosla et al.
2020) on its L2-normalised embedding beside the cross-entropy, batches of 32 minerals x 4 spectra from different
specimens, from the run's training spectra and all the fair/poor files of its training specimens (processed and RAW),
each a fresh copy under the run's physical augmentation; Adam 1e-4. Then, as in embedding_search (trainer/embedding.py):
the training spectra embedded are the library; ranked alone and fused with the fine-tuned softmax, against the model
alone; top-1 / top-3 on the test part's excellent spectra and its specimens' fair/poor files.

    python benchmarks/contrastive_embedding.py RUN [RUN ...] [--epochs 8] [--contrastive-weight 1] [--out FILE.json]

``--contrastive-weight 0`` is the control: the same batches, augmentation, data and epochs with the cross-entropy
alone, so that a gain can be told apart from the extra training and the RAW files it sees.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from trainer.augment import Augmentation
from trainer.contrastive import EMBEDDING, PREDICTIONS, compile_two_headed, specimen_batches
from trainer.embedding import embedding_search_report, summary_table
from trainer.field_set import FieldSet
from trainer.training import load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)

BATCH = 128  #: 32 minerals x 4 spectra


def run_report(run_dir: str, field: FieldSet, epochs: int, contrastive_weight: float) -> dict[str, Any]:
    run = load_run(run_dir)
    dataset = run.load_dataset()
    model = compile_two_headed(run.build_trained_model(), 1e-4, contrastive_weight)
    labels = dataset.labels(run.classes)
    train = run.split.train
    extra = field.training_rows(dataset.specimen[train], run.classes, kinds=("processed", "raw"))
    index = {m: i for i, m in enumerate(run.classes)}
    X = np.concatenate([dataset.X[train], field.X[extra]])
    y = np.concatenate([labels[train], [index[m] for m in field.mineral[extra]]]).astype(np.int64)
    specimens = np.concatenate([dataset.specimen[train], field.specimen[extra]]).astype(str)
    augmentation = Augmentation.parse(run.fit_config.augment)
    started = time.perf_counter()
    for epoch in range(epochs):
        for x, targets in specimen_batches(X, y, specimens, len(run.classes), BATCH, augmentation, run.split.seed, epoch):
            model.train_on_batch(x, targets)
        print(f"{run_dir}: epoch {epoch + 1}/{epochs}", flush=True)
    seconds = time.perf_counter() - started

    def embed(X_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = model.predict(X_[:, :, None], batch_size=256, verbose=0)
        return np.asarray(out[EMBEDDING]), np.asarray(out[PREDICTIONS])

    return {"train_seconds": round(seconds, 1), **embedding_search_report(run, dataset, field, embed)}


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--contrastive-weight", type=float, default=1.0, help="0: the control, the same fine-tuning with cross-entropy alone")


def report_of(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    return run_report(run_dir, field, args.epochs, args.contrastive_weight)


def summary(reports: dict[str, dict[str, Any]]) -> str:
    return summary_table(reports, " (after fine-tuning)")


if __name__ == "__main__":
    run_reports.main(__doc__, report_of, summary, options)
