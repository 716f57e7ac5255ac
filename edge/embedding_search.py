"""Nearest references in the network's own embedding, fused into its probabilities.

A network trained across specimens (``trainer fit --contrastive``) places spectra of one mineral close together in
its ``embedding_dense`` layer whatever specimen they come from. A bundle exported from such a network carries that
layer as a second model output and ``embeddings.npz``: every library reference's embedding (unit length) with its
class. For each spectrum, every class's best cosine similarity to its references (-1 for a class without one) joins
the model's log-probabilities::

    p' = softmax(log max(p, MODEL_FLOOR) + weight * best_cosine)

``weight`` is fitted by ``trainer export`` on validation spectra of specimens the model never saw (and their
fair/poor files). ``p'`` takes the place of the model's probabilities everywhere downstream: the library fusion
(:mod:`edge.library`), the answer gate and the mixture fit see one model output, so each keeps one code path.
:class:`EmbeddingSearch` is the one copy of this step: the device (:class:`edge.runtime.Classifier`) and the trainer
(``trainer openset``, ``trainer export``) call it alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.library import MODEL_FLOOR, softmax


def unit(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero); float32, same shape."""
    e = np.asarray(embeddings, dtype=np.float32)
    norm = np.linalg.norm(e, axis=-1, keepdims=True)
    return e / np.maximum(norm, 1e-12)


@dataclass
class EmbeddingSearch:
    """References' embeddings and the weight their best cosine per class gets in the model's answer.

    ``vectors``: (n, d) reference embeddings (any length: made unit here); ``classes``: (n,) their class indices
    in the model's output order; ``n_classes``: the model's output count; ``weight``: >= 0, 0 leaves the model's
    probabilities as they are.
    """

    vectors: np.ndarray
    classes: np.ndarray
    n_classes: int
    weight: float = 0.0
    _starts: np.ndarray = field(init=False, repr=False)
    _present: np.ndarray = field(init=False, repr=False)
    _rows: np.ndarray = field(init=False, repr=False)  #: each stored vector's row in the order given

    def __post_init__(self) -> None:
        classes = np.asarray(self.classes, dtype=np.int64)
        if self.vectors.ndim != 2 or len(classes) != len(self.vectors):
            raise ValueError(f"embedding search: {self.vectors.shape} vectors but {len(classes)} classes")
        if len(classes) and (classes.min() < 0 or classes.max() >= self.n_classes):
            raise ValueError(f"embedding search: a reference's class lies outside 0..{self.n_classes - 1}")
        order = np.argsort(classes, kind="stable")  # sorted by class: the best per class is one reduceat
        self._rows = order
        self.vectors = unit(self.vectors[order])
        self.classes = classes[order]
        self._present, self._starts = np.unique(self.classes, return_index=True)

    @classmethod
    def of_library(cls, vectors: np.ndarray, minerals: list[str], classes: list[str], weight: float = 0.0) -> EmbeddingSearch:
        """The search over a library's references: ``vectors`` (n, d) their embeddings, ``minerals`` (n,) their
        mineral names, looked up in ``classes`` (the model's output order); every mineral must be a class."""
        index = {m: i for i, m in enumerate(classes)}
        missing = sorted(set(minerals) - set(index))
        if missing:
            raise ValueError(f"embedding search: {len(missing)} reference minerals are not model classes ({', '.join(missing[:3])})")
        return cls(vectors, np.array([index[m] for m in minerals], dtype=np.int64), len(classes), weight)

    def _stored(self) -> np.ndarray:
        """For each reference in the order given (the library's), its row as stored (sorted by class)."""
        stored = np.empty_like(self._rows)
        stored[self._rows] = np.arange(len(self._rows))
        return stored

    def in_given_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (n, d), classes (n,)) in the order they were given: row i is the library's reference i, as a
        bundle stores them."""
        stored = self._stored()
        return self.vectors[stored], self.classes[stored]

    def subset(self, keep: np.ndarray) -> EmbeddingSearch:
        """The search over the references ``keep`` ((n,) bool, in the order they were given: the library's) marks,
        e.g. without a benchmark's test specimens."""
        chosen = self._stored()[np.flatnonzero(keep)]
        return EmbeddingSearch(self.vectors[chosen], self.classes[chosen], self.n_classes, self.weight)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def best_cosine(self, embeddings: np.ndarray) -> np.ndarray:
        """(m, n_classes) each class's best cosine similarity to the (m, d) ``embeddings``; -1 where it has no reference."""
        e = unit(np.atleast_2d(embeddings))
        best = np.full((len(e), self.n_classes), -1.0, np.float32)
        if len(self.vectors):
            best[:, self._present] = np.maximum.reduceat(e @ self.vectors.T, self._starts, axis=1)
        return best

    def fuse(self, probabilities: np.ndarray, embeddings: np.ndarray, weight: float | None = None) -> np.ndarray:
        """The model's probabilities with the embedding search fused in (see the module docstring); ``probabilities``
        (n_classes,) or (m, n_classes) with ``embeddings`` (d,) or (m, d); ``weight`` overrides the fitted one."""
        w = self.weight if weight is None else weight
        p = np.asarray(probabilities, dtype=np.float64)
        if w == 0.0:
            return p.astype(np.float32)
        fused = softmax(np.log(np.maximum(np.atleast_2d(p), MODEL_FLOOR)) + w * self.best_cosine(embeddings))
        return fused.astype(np.float32).reshape(p.shape)
