"""Training across specimens (trainer/contrastive.py): the loss, the batches, the recipe's refusals, a tiny fit."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="the trainer's tests need Keras (pip install -e '.[train]')")

from trainer.contrastive import SPECTRA_PER_MINERAL, specimen_batches, supervised_contrastive  # noqa: E402
from trainer.training import ConfigError, FitConfig  # noqa: E402


def _loss(z, labels) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(supervised_contrastive(np.asarray(labels), np.asarray(z, dtype=np.float32))))


def test_the_loss_is_low_where_a_mineral_s_spectra_lie_together():
    together = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    apart = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)  # each beside the other mineral's
    labels = [0, 0, 1, 1]
    assert _loss(together, labels).mean() < 0.01
    assert _loss(apart, labels).mean() > 5.0
    lone = _loss(together, [0, 0, 1, 2])
    assert lone[2] == 0.0 and lone[3] == 0.0  # no positive: no pull either way


def test_batches_take_each_mineral_from_different_specimens_and_skip_lone_spectra():
    labels = np.array([0] * 6 + [1] * 4 + [2])
    specimens = np.array(["a", "a", "a", "b", "c", "d", "e", "e", "f", "f", "g"])
    X = np.random.default_rng(0).random((len(labels), 1570)).astype(np.float32)
    batches = list(specimen_batches(X, labels, specimens, 3, 8, None, seed=0, epoch=0))
    assert batches
    for x, targets in batches:
        y = targets["unit_embedding"]
        assert x.shape == (8, 1570, 1) and targets["predictions"].shape == (8, 3)
        assert 2 not in y  # a mineral with one spectrum has no positive
        for mineral in np.unique(y):
            chosen = [i for i, row in enumerate(x[:, :, 0]) if y[i] == mineral]
            assert len(chosen) == SPECTRA_PER_MINERAL
            rows = [int(np.flatnonzero((X == x[i, :, 0]).all(axis=1))[0]) for i in chosen]
            # as many specimens as the mineral has, up to four: mineral 0 has four, mineral 1 two
            assert len(set(specimens[rows])) == min(4, len(set(specimens[labels == mineral])))


def test_the_recipe_refuses_what_it_cannot_train():
    with pytest.raises(ConfigError, match="resnet1d"):
        FitConfig(arch="sang2021", contrastive=1.0)
    with pytest.raises(ConfigError, match="extra-kinds"):
        FitConfig(arch="resnet1d", extra_kinds="fair")
    with pytest.raises(ConfigError, match="batch-size"):
        FitConfig(arch="resnet1d", contrastive=1.0, batch_size=4)


@pytest.mark.tensorflow
def test_a_contrastive_fit_writes_a_plain_classifier(tmp_path, dataset2_npz):
    """`fit --contrastive` trains through the embedding too, and its run folder is an ordinary classifier."""
    from collections import Counter

    from trainer.evaluation import evaluate
    from trainer.sources import load_published_npz
    from trainer.training import fit, load_run

    full = load_published_npz(dataset2_npz)
    largest = [m for m, _ in Counter(full.mineral.tolist()).most_common(4)]
    full.subset(np.flatnonzero(np.isin(full.mineral, largest))).save(tmp_path / "four.npz")
    config = FitConfig(protocol="grouped", arch="resnet1d", width=0.25, epochs=1, batch_size=16, contrastive=1.0)
    run = load_run(fit(tmp_path / "four.npz", tmp_path / "run", config, quiet=True))
    assert run.fit_config.contrastive == 1.0 and {"accuracy", "val_accuracy", "contrastive_loss"} <= set(run.history)
    assert evaluate(run.path)["test"]["top1"] >= 0.0  # scored as every run is
    model = run.build_trained_model()
    assert model.output_shape == (None, 4)  # the classifier alone: exported like any other
