"""Nearest references in the network's own embedding, on grouped-fair: a learned similarity for free?

For each grouped run: its training spectra, embedded by the model's ``embedding`` layer (L2-normalised), are the
library; each test spectrum (the grouped test part's RRUFF excellent spectra and the fair/poor files of its test
specimens, processed and RAW) gets, per mineral, its best cosine similarity to that mineral's references. Ranked
alone (``embedding_knn``) and fused with the model (``log p + w * best cosine``, ``w`` chosen on the run's
validation spectra and their specimens' fair/poor files), against the model alone (trainer/embedding.py); top-1 /
top-3 as the device ranks (stable order). Keras float.

    python benchmarks/embedding_search.py RUN [RUN ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trainer.embedding import embedding_search_report, summary_table
from trainer.field_set import FieldSet
from trainer.resnet import EMBEDDING_LAYER
from trainer.training import load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    import keras

    run = load_run(run_dir)
    model = run.build_trained_model()
    both = keras.Model(model.inputs, [model.get_layer(EMBEDDING_LAYER).output, model.output])

    def embed(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, p = both.predict(X[:, :, None], batch_size=256, verbose=0)
        return e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-9), p

    return embedding_search_report(run, run.load_dataset(), field, embed)


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, summary_table)
