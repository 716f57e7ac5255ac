"""Training across specimens: a supervised contrastive loss beside the cross-entropy (``trainer fit --contrastive W``).

What separates a field spectrum from the library is the specimen: bands that move one by one with composition,
intensities that change with orientation, fluorescence and noise. The cross-entropy alone asks only that each
spectrum land in its class; the supervised contrastive loss (Khosla et al. 2020, "Supervised Contrastive
Learning") asks that spectra of one mineral lie close in the network's embedding *whatever specimen they come from*,
and those of others apart. Batches are built for it (:func:`specimen_batches`): ``batch_size // SPECTRA_PER_MINERAL``
minerals, each with SPECTRA_PER_MINERAL spectra taken from as many different specimens as it has (the fair/poor
files of ``--extra-train`` among them: a field spectrum is pulled towards excellent ones of other specimens), each a
fresh copy under the run's augmentation.

The network is the classifier itself (:func:`compile_two_headed` trains it through a second output, the
L2-normalised ``embedding_dense`` layer, which has no weights of its own): the run folder holds a plain classifier,
exported and run on the device like any other. Measured in docs/RESULTS.md ("A contrastive fine-tune"), with the
cross-entropy-only control.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import ops

from trainer.augment import Augmentation, augment_batch

#: Spectra of one mineral in a batch: its positives for one another.
SPECTRA_PER_MINERAL = 4
#: Temperature of the contrastive softmax over cosine similarities (Khosla et al.'s 0.1).
TEMPERATURE = 0.1
#: The classifier's output, and its accuracy as the two-headed model logs it (what early stopping watches).
PREDICTIONS = "predictions"
ACCURACY = f"{PREDICTIONS}_accuracy"
EMBEDDING = "unit_embedding"


def supervised_contrastive(labels: Any, z: Any) -> Any:
    """Per-spectrum supervised contrastive loss of L2-normalised embeddings ``z`` (b, d); ``labels`` (b,) or (b, 1)
    integer classes: for each spectrum, the mean over its positives (same class, itself excluded) of
    ``-log softmax(z . z' / TEMPERATURE)`` over the rest of the batch. A spectrum without a positive contributes 0."""
    y = ops.reshape(ops.cast(labels, "int32"), (-1,))
    n = ops.shape(z)[0]
    eye = ops.eye(n)
    logits = ops.matmul(z, ops.transpose(z)) / TEMPERATURE - 1e9 * eye
    log_prob = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    positive = ops.cast(ops.equal(y[:, None], y[None, :]), "float32") * (1.0 - eye)
    return -ops.sum(positive * log_prob, axis=1) / ops.maximum(ops.sum(positive, axis=1), 1.0)


def compile_two_headed(
    classifier: keras.Model, learning_rate: Any, weight: float, label_smoothing: float = 0.0
) -> keras.Model:
    """The classifier with a second output, its L2-normalised ``embedding_dense`` layer, compiled with the
    contrastive loss (times ``weight``) there and the cross-entropy on the predictions (Adam, as ``compile_model``).
    The two share every weight: training this trains ``classifier``."""
    embedding = keras.layers.UnitNormalization(name=EMBEDDING)(classifier.get_layer("embedding_dense").output)
    model = keras.Model(classifier.inputs, {EMBEDDING: embedding, PREDICTIONS: classifier.output})
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999),
        loss={EMBEDDING: supervised_contrastive, PREDICTIONS: keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)},
        loss_weights={EMBEDDING: weight, PREDICTIONS: 1.0},
        metrics={PREDICTIONS: [keras.metrics.CategoricalAccuracy(name="accuracy")]},
    )
    return model


def targets(labels: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """What the two-headed model is fitted to: class indices for the embedding, one-hot for the predictions."""
    return {EMBEDDING: labels.astype(np.int32), PREDICTIONS: keras.utils.to_categorical(labels, n_classes).astype(np.float32)}


def specimen_batches(
    X: np.ndarray,
    labels: np.ndarray,
    specimens: np.ndarray,
    n_classes: int,
    batch_size: int,
    augmentation: Augmentation | None,
    seed: int,
    epoch: int,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """One epoch (``len(X) // batch_size`` batches) of ``batch_size // SPECTRA_PER_MINERAL`` minerals with
    SPECTRA_PER_MINERAL spectra each, from different specimens first. ``X`` (n, GRID_SIZE), ``labels`` and
    ``specimens`` (n,); minerals with a single spectrum are left out (they have no positive)."""
    rng = np.random.default_rng([seed, epoch])
    by_class: dict[int, list[np.ndarray]] = {}
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        by_class[int(c)] = [rows[specimens[rows] == s] for s in np.unique(specimens[rows])]
    usable = np.array([c for c, groups in by_class.items() if sum(map(len, groups)) >= 2])
    minerals = max(1, batch_size // SPECTRA_PER_MINERAL)
    for _ in range(max(1, len(X) // batch_size)):
        picked: list[int] = []
        for c in rng.choice(usable, min(minerals, len(usable)), replace=False):
            groups = by_class[int(c)]
            order = rng.permutation(len(groups))
            picked += [int(rng.choice(groups[order[i % len(groups)]])) for i in range(SPECTRA_PER_MINERAL)]
        chosen = np.array(picked)
        x = X[chosen] if augmentation is None else augment_batch(X[chosen], labels[chosen], augmentation, rng, X, labels)
        yield x[:, :, None].astype(np.float32), targets(labels[chosen], n_classes)


def history_names(history: dict[str, list[float]]) -> dict[str, list[float]]:
    """The two-headed model's history under a classifier run's names: ``predictions_accuracy`` -> ``accuracy``,
    ``unit_embedding_loss`` -> ``contrastive_loss``, ``predictions_loss`` -> ``cross_entropy`` (and val_ each)."""
    names = {ACCURACY: "accuracy", f"{EMBEDDING}_loss": "contrastive_loss", f"{PREDICTIONS}_loss": "cross_entropy"}
    out = {}
    for key, values in history.items():
        prefix = "val_" if key.startswith("val_") else ""
        bare = key[len(prefix) :]
        out[prefix + names.get(bare, bare)] = values
    return out
