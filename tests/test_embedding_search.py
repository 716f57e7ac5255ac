"""The embedding search (edge.embedding_search): best cosine per class, fused into the model's probabilities; a
bundle that carries one gives the fused probabilities on the device, and export fits its weight."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.embedding_search import EmbeddingSearch
from edge.library import MODEL_FLOOR, softmax
from tests.conftest import two_mineral_bundle


def test_best_cosine_is_per_class_and_minus_one_without_a_reference():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [0.6, 0.8], [-1.0, 0.0]])  # lengths do not matter
    search = EmbeddingSearch(vectors, np.array([0, 1, 1, 0]), n_classes=3, weight=1.0)
    best = search.best_cosine(np.array([[0.0, 5.0], [3.0, 0.0]]))
    np.testing.assert_allclose(best, [[0.0, 1.0, -1.0], [1.0, 0.6, -1.0]], atol=1e-6)


def test_fuse_adds_weighted_cosine_to_log_probabilities_and_weight_zero_changes_nothing():
    search = EmbeddingSearch(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]), n_classes=2, weight=4.0)
    p = np.array([0.7, 0.3])
    query = np.array([0.0, 1.0])  # the embedding lies on class 1's reference
    fused = search.fuse(p, query)
    np.testing.assert_allclose(fused, softmax(np.log(p) + 4.0 * np.array([0.0, 1.0])), rtol=1e-5)
    assert fused.argmax() == 1  # the search overturned the model's first place
    np.testing.assert_allclose(search.fuse(p, query, weight=0.0), p, rtol=1e-6)
    batch = search.fuse(np.array([p, p[::-1]]), np.array([query, query]))  # row-wise, as the trainer calls it
    assert batch.shape == (2, 2) and np.allclose(batch[0], fused)
    zero = np.array([0.0, 1.0])  # an int8 output of exactly 0 is floored, not -inf
    assert np.isfinite(search.fuse(zero, np.array([1.0, 0.0]))).all()
    assert search.fuse(zero, np.array([1.0, 0.0]))[0] == pytest.approx(1 / (1 + np.exp(-(np.log(MODEL_FLOOR) + 4.0))), rel=1e-4)


def test_subset_keeps_the_references_marked_in_library_order():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    search = EmbeddingSearch(vectors, np.array([1, 0, 1]), n_classes=2, weight=2.0)  # stored sorted by class
    held = search.subset(np.array([False, True, True]))  # the first reference given (class 1) leaves
    np.testing.assert_allclose(held.best_cosine(np.array([0.6, 0.8])), [[0.8, 1.0]], atol=1e-6)
    np.testing.assert_allclose(held.best_cosine(np.array([1.0, 0.0])), [[0.0, 0.6]], atol=1e-6)
    given, classes = search.in_given_order()  # what a bundle stores: the library's order, not the sorted one
    np.testing.assert_allclose(given, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), atol=1e-6)
    assert classes.tolist() == [1, 0, 1]
    assert held.weight == 2.0 and len(held.classes) == 2


def test_references_with_a_class_outside_the_model_are_refused():
    with pytest.raises(ValueError, match="outside"):
        EmbeddingSearch(np.ones((2, 3)), np.array([0, 5]), n_classes=2)


def test_a_library_search_looks_its_minerals_up_in_the_model_classes():
    search = EmbeddingSearch.of_library(np.array([[1.0, 0.0], [0.0, 1.0]]), ["Quartz", "Albite"], ["Albite", "Calcite", "Quartz"], weight=3.0)
    np.testing.assert_allclose(search.best_cosine(np.array([1.0, 0.0])), [[0.0, -1.0, 1.0]], atol=1e-6)
    assert search.weight == 3.0
    with pytest.raises(ValueError, match="not model classes.*Zircon"):
        EmbeddingSearch.of_library(np.ones((1, 2)), ["Zircon"], ["Albite"])


def test_fit_weight_picks_the_weight_that_explains_validation_best():
    from trainer.embedding import SEARCH_WEIGHTS, fit_weight

    rng = np.random.default_rng(0)
    n, classes = 300, 5
    y = rng.integers(0, classes, n)
    P = np.full((n, classes), 1.0 / classes)  # a model that knows nothing
    B = np.where(np.arange(classes)[None, :] == y[:, None], 0.9, 0.1)  # a search that is always right
    weight, nll = fit_weight(P, B, y, np.ones(n))
    assert weight == max(SEARCH_WEIGHTS) and nll["0"] > nll[f"{weight:g}"]
    wrong = np.roll(B, 1, axis=1)  # a search that is always wrong is not used
    assert fit_weight(P, wrong, y, np.ones(n))[0] == 0.0


def test_a_bundle_with_an_embedding_search_answers_with_it(tmp_path):
    """A tiny two-output model (class probabilities fixed at 0.8 / 0.2, embedding = the spectrum's first two
    values): the device's probabilities follow the reference the embedding lies on, by the bundle's weight."""
    import keras

    from edge.bundle import EMBEDDINGS, load_bundle
    from edge.runtime import Classifier
    from ramancore.preprocessing import GRID
    from trainer.export import convert

    inputs = keras.Input((GRID.size, 1))
    flat = keras.layers.Flatten()(inputs)
    probabilities = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(np.log([0.8, 0.2])))(flat)
    pick = np.zeros((GRID.size, 3), np.float32)
    pick[0, 0] = pick[1, 1] = pick[2, 2] = 1.0
    embedding = keras.layers.Dense(3, use_bias=False, kernel_initializer=keras.initializers.Constant(pick), name="embedding_dense")(flat)
    model = keras.Model(inputs, [probabilities, embedding])
    representative = np.random.default_rng(0).uniform(0, 1, (4, GRID.size)).astype(np.float32)
    model_bytes = convert(model, "float32", representative)
    search = EmbeddingSearch(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([0, 1]), n_classes=2, weight=6.0)
    bundle = two_mineral_bundle(tmp_path / "b", model_bytes, embeddings=search)
    assert EMBEDDINGS in bundle.manifest.files and bundle.manifest.embedding_search["weight"] == 6.0
    classifier = Classifier(load_bundle(tmp_path / "b"), num_threads=1)
    on_b = np.zeros(GRID.size, np.float32)
    on_b[1] = 1.0  # embeds exactly onto B's reference
    ((own, emb),) = classifier.member_outputs(on_b)
    np.testing.assert_allclose(own, [0.8, 0.2], atol=1e-5)
    np.testing.assert_allclose(emb, [0.0, 1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(classifier.probabilities(on_b), softmax(np.log([0.8, 0.2]) + 6.0 * np.array([0.0, 1.0])), rtol=1e-4)
    assert classifier.probabilities(on_b).argmax() == 1
    # the same model written without the search: the model's own probabilities, and no stale embeddings file
    plain = two_mineral_bundle(tmp_path / "b", model_bytes)
    assert EMBEDDINGS not in plain.manifest.files and not (tmp_path / "b" / EMBEDDINGS).exists()
    np.testing.assert_allclose(Classifier(plain, num_threads=1).probabilities(on_b), [0.8, 0.2], atol=1e-5)


def _two_output_model(p: list[float], embed_from: int):
    """A tiny model: class probabilities fixed at ``p``, embedding = the spectrum's values ``embed_from``, +1, +2
    (three values: the device tells its outputs apart by their length)."""
    import keras

    from ramancore.preprocessing import GRID

    inputs = keras.Input((GRID.size, 1))
    flat = keras.layers.Flatten()(inputs)
    probabilities = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(np.log(p)))(flat)
    pick = np.zeros((GRID.size, 3), np.float32)
    pick[embed_from, 0] = pick[embed_from + 1, 1] = pick[embed_from + 2, 2] = 1.0
    embedding = keras.layers.Dense(3, use_bias=False, kernel_initializer=keras.initializers.Constant(pick), name="embedding_dense")(flat)
    return keras.Model(inputs, [probabilities, embedding])


def test_an_ensemble_fuses_each_members_search_into_its_own_probabilities(tmp_path):
    """Two members that embed differently (values 0-2 and 3-5 of the spectrum), each with its own references and
    weight: the device fuses each member's search into that member's probabilities, then averages them."""
    from edge.bundle import EMBEDDINGS, BundleError, embeddings_name, load_bundle
    from edge.runtime import Classifier
    from ramancore.preprocessing import GRID
    from trainer.export import convert

    representative = np.random.default_rng(0).uniform(0, 1, (4, GRID.size)).astype(np.float32)
    members = [convert(_two_output_model([0.8, 0.2], 0), "float32", representative), convert(_two_output_model([0.3, 0.7], 3), "float32", representative)]
    references = np.eye(3)[:2]
    searches = [EmbeddingSearch(references, np.array([0, 1]), n_classes=2, weight=w) for w in (6.0, 2.0)]
    bundle = two_mineral_bundle(tmp_path / "e", members, embeddings=searches)
    assert bundle.manifest.embedding_search["weights"] == [6.0, 2.0] and embeddings_name(1) in bundle.manifest.files
    x = np.zeros(GRID.size, np.float32)
    x[1] = 1.0  # member 0 embeds onto B's reference
    x[3] = 1.0  # member 1 embeds onto A's
    first = softmax(np.log([0.8, 0.2]) + 6.0 * np.array([0.0, 1.0]))
    second = softmax(np.log([0.3, 0.7]) + 2.0 * np.array([1.0, 0.0]))
    classifier = Classifier(load_bundle(tmp_path / "e"), num_threads=1)
    np.testing.assert_allclose(classifier.probabilities(x), (first + second) / 2, rtol=1e-4)
    # a search for one member only is refused where the bundle is opened, in one line
    with pytest.raises(BundleError, match="an ensemble needs one per member"):
        two_mineral_bundle(tmp_path / "one", members, embeddings=searches[:1])
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    manifest["embedding_search"].pop("weights")
    (tmp_path / "e" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"an embedding search for 2 model\(s\) needs one per member \(embeddings.npz, embeddings-1.npz"):
        load_bundle(tmp_path / "e")
    assert EMBEDDINGS in manifest["files"]
