"""How the device orders the classes of one prediction, in one place.

int8 outputs move in steps of 1/256, so two classes often share the top probability. The device
sorts with a *stable* argsort of the negated outputs: among equal scores the lower class index
comes first. Every accuracy this project reports ranks the same way (``trainer.metrics`` calls
:func:`rank`), so a tie is a hit only when the device would have shown the true class first.
"""

from __future__ import annotations

import numpy as np


def rank(scores: np.ndarray) -> np.ndarray:
    """Class indices from best to worst along the last axis; ties keep the lower index first.

    ``scores``: (classes,) or (n, classes) probabilities (or any score where larger is better).
    """
    return np.argsort(-np.asarray(scores), axis=-1, kind="stable")


def top_k_hits(y_true: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean (n,): is the true class among the first ``k`` of :func:`rank`? ``scores`` is (n, classes)."""
    order = rank(scores)[:, :k]
    return np.any(order == np.asarray(y_true)[:, None], axis=1)
