"""Nearest references in a network's embedding: the trainer's side of :mod:`edge.embedding_search`, and the research
tool behind ``benchmarks/embedding_search.py`` and ``benchmarks/contrastive_embedding.py``.

What ships (:func:`with_embedding_output`, :func:`fit_weight`, :func:`keras_search`): a network with an
``embedding_dense`` layer is exported with that layer as a second output; its references' embeddings and a weight
fitted on validation spectra of new specimens (:func:`fit_weight`, by the fused answer's negative log-likelihood)
make the bundle's embedding search. ``trainer openset`` scores a Keras model the same way (:func:`keras_search`), so
the gate it fits sees the probabilities the device will give it.

A grouped run's training spectra, embedded (L2-normalised), are the library; each spectrum of a part gets, per
mineral, its best cosine similarity to that mineral's references. :func:`embedding_search_report` ranks by it alone
(``embedding_knn``), fused with the model (``log p + w * best cosine``, ``w`` chosen on the run's validation spectra
and their specimens' fair/poor files), and the model alone, on the run's test part kind by kind
(:func:`trainer.field_set.labelled_parts`), top-1 / top-3 ranked as the device ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import log_softmax

from edge.embedding_search import EmbeddingSearch
from edge.library import MODEL_FLOOR, ReferenceLibrary
from ramancore.preprocessing import smooth_measured_span
from trainer.dataset import SpectraDataset
from trainer.field_set import FieldSet, labelled_parts, validation_weights, validation_with_field
from trainer.metrics import top1_top3
from trainer.training import Run

#: Weights of the embedding term tried on validation.
WEIGHTS = (0, 2, 5, 10, 20, 40)
#: The layer whose output the embedding search compares (before its batch normalisation and ReLU: what the
#: contrastive loss of trainer.contrastive is trained on).
SEARCH_LAYER = "embedding_dense"
#: Weights the shipped search is fitted over (the fused answer's validation NLL; grouped splits chose 3 to 8).
SEARCH_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0)


def with_embedding_output(model):  # keras.Model -> keras.Model (untyped: keras is imported by the caller)
    """The classifier with its SEARCH_LAYER as a second output, or None if it has no such layer."""
    import keras

    try:
        layer = model.get_layer(SEARCH_LAYER)
    except ValueError:
        return None
    if int(layer.output.shape[-1]) == int(model.output.shape[-1]):
        return None  # the device tells its two outputs apart by their length
    return keras.Model(model.inputs, [model.output, layer.output], name=f"{model.name}_with_embedding")


def fit_weight(probabilities: np.ndarray, best_cosine: np.ndarray, y: np.ndarray, sample_weight: np.ndarray) -> tuple[float, dict[str, float]]:
    """The SEARCH_WEIGHTS entry whose fused answer (edge.embedding_search) has the least weighted negative
    log-likelihood on validation; ``probabilities``, ``best_cosine``: (n, classes), ``y``: (n,), ``sample_weight``: (n,).
    Returns (weight, NLL by weight)."""
    logp = np.log(np.maximum(probabilities, MODEL_FLOOR))
    rows = np.arange(len(y))
    nll = {w: float(-np.sum(sample_weight * log_softmax(logp + w * best_cosine, axis=1)[rows, y]) / np.sum(sample_weight)) for w in SEARCH_WEIGHTS}
    return min(SEARCH_WEIGHTS, key=lambda w: nll[w]), {f"{w:g}": round(v, 4) for w, v in nll.items()}


def smoothed_inputs(X: np.ndarray, smoothing_cm1: float) -> np.ndarray:
    """(n, GRID_SIZE) model inputs smoothed as a bundle with that window smooths them (0: as they are)."""
    if not smoothing_cm1:
        return X
    return np.stack([smooth_measured_span(x, smoothing_cm1) for x in X])


def keras_search(
    run: Run, dataset: SpectraDataset, model, field: FieldSet | None, smoothing_cm1: float = 0.0, library: ReferenceLibrary | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """``predict`` ((n, GRID_SIZE) -> (n, classes)) of a Keras model with its embedding search fused in, as the
    device fuses it: its training spectra are the references, the weight fitted on its validation spectra and
    their specimens' fair/poor files. Without an embedding layer: the model alone. ``smoothing_cm1``: the bundle's
    model input smoothing (cm^-1, 0: none), applied to every spectrum the model sees, references included.
    ``library``: the bundle's library, whose spectra are then the references (default: the training spectra). Also
    returns what was fitted."""
    searched, info, _ = keras_search_outputs(run, dataset, model, field, smoothing_cm1, library)
    return (lambda X: searched(X)[0]), info


def keras_search_outputs(
    run: Run, dataset: SpectraDataset, model, field: FieldSet | None, smoothing_cm1: float = 0.0, library: ReferenceLibrary | None = None
) -> tuple[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]], dict[str, Any], EmbeddingSearch | None]:
    """:func:`keras_search`, its ``predict`` also giving each spectrum's best cosine per class ((n, classes), None
    without an embedding layer), and the fitted search itself (its references' embeddings: ``in_given_order()``,
    the training rows' or the library's order): what a benchmark of the search's evidence needs."""
    two = with_embedding_output(model)
    if two is None:
        return (lambda X: (model.predict(smoothed_inputs(X, smoothing_cm1)[:, :, None], batch_size=256, verbose=0), None)), {}, None

    def outputs(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        P, E = two.predict(smoothed_inputs(X, smoothing_cm1)[:, :, None], batch_size=256, verbose=0)
        return P, E

    labels = dataset.labels(run.classes)
    if library is None:
        _, references = outputs(dataset.X[run.split.train])
        search = EmbeddingSearch(references, labels[run.split.train], len(run.classes))
    else:
        _, references = outputs(np.asarray(library.spectra, np.float32))
        search = EmbeddingSearch.of_library(references, list(library.minerals), run.classes)
    X, y, joined = validation_with_field(dataset.X[run.split.val], labels[run.split.val], field, dataset.specimen[run.split.val], run.classes)
    P, E = outputs(X)
    search.weight, nll = fit_weight(P, search.best_cosine(E), y, validation_weights(len(y), joined))

    def predict(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        P, E = outputs(X)
        return search.fuse(P, E), search.best_cosine(E)

    info = {"weight": search.weight, "references": len(references), "layer": SEARCH_LAYER, "validation_nll": nll, "input_smoothing_cm1": smoothing_cm1}
    return predict, info, search


#: The kinds of test spectra reported, in order.
KINDS = ("excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw")
#: The rankings reported.
RANKINGS = ("model", "embedding_knn", "fused")

Embed = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  #: (n, GRID_SIZE) -> (L2-normalised embeddings, probabilities)


def embedding_search_report(run: Run, dataset: SpectraDataset, field: FieldSet, embed: Embed) -> dict[str, Any]:
    """The three rankings on the run's test part, kind by kind (see the module docstring)."""
    labels = dataset.labels(run.classes)
    references, _ = embed(dataset.X[run.split.train])
    best_per_class = EmbeddingSearch(references, labels[run.split.train], len(run.classes)).best_cosine

    def parts(rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return labelled_parts(field, dataset.X[rows], labels[rows], dataset.specimen[rows], run.classes)

    validation = parts(run.split.val)
    Ev, Pv = embed(np.concatenate([x for x, _ in validation.values()]))
    yv = np.concatenate([y for _, y in validation.values()])
    Bv = best_per_class(Ev)
    by_weight = {w: top1_top3(yv, np.log(np.maximum(Pv, MODEL_FLOOR)) + w * Bv)[0] for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: by_weight[w])
    report: dict[str, Any] = {"validation_top1_by_weight": by_weight, "weight": weight}
    for name, (X, y) in parts(run.split.test).items():
        E, P = embed(X)
        B = best_per_class(E)
        report[name] = {"n": len(y), "model": top1_top3(y, P), "embedding_knn": top1_top3(y, B), "fused": top1_top3(y, np.log(np.maximum(P, MODEL_FLOOR)) + weight * B)}
    return report


def summary_table(reports: dict[str, dict[str, Any]], suffix: str = "") -> str:
    """Mean top-1 / top-3 over runs of each ranking and kind, as a Markdown table."""
    lines = ["| ranking (mean of the runs, top-1 / top-3) | " + " | ".join(KINDS) + " |", "|---|" + "---|" * len(KINDS)]
    for ranking in RANKINGS:
        cells = [
            f"{100 * np.mean([r[k][ranking][0] for r in reports.values()]):.1f} / {100 * np.mean([r[k][ranking][1] for r in reports.values()]):.1f}"
            for k in KINDS
        ]
        lines.append(f"| {ranking}{suffix} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
