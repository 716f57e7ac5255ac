from __future__ import annotations

import json
from collections import Counter

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from trainer.cli import app
from trainer.model import build_model, expected_parameter_count
from trainer.sources import load_published_npz

pytestmark = pytest.mark.tensorflow
runner = CliRunner()


def test_table2_architecture():
    model = build_model(192)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.filters for c in convs] == [64] * 2 + [128] * 2 + [256] * 4 + [512] * 4 + [512] * 4
    assert all(c.kernel_size == (3,) and c.padding == "valid" for c in convs)
    assert sum(isinstance(layer, keras.layers.MaxPooling1D) for layer in model.layers) == 5
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [512, 512, 192]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 2
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]
    assert model.output_shape == (None, 192)
    # 1570 -> 783 -> 389 -> 190 -> 91 -> 41 time steps; 41 x 512 features into the first Dense
    assert model.get_layer("flatten").output.shape[-1] == 41 * 512


@pytest.mark.parametrize(("classes", "width"), [(192, 1.0), (1332, 1.0), (192, 0.25)])
def test_parameter_count_matches_table2_shapes(classes, width):
    assert build_model(classes, width).count_params() == expected_parameter_count(classes, width)


def test_paper_network_size():
    # 6,678,080 conv + 10,748,416 first Dense + 262,656 second + 4,096 BatchNorm + 98,496 softmax
    assert expected_parameter_count(192) == 17_791_744


def test_small_model_beats_chance_on_dataset1_classes(dataset2_npz, tmp_path):
    """fit -> evaluate through the CLI on the 8 largest Dataset_1 classes, a narrow model, on the CPU."""
    full = load_published_npz(dataset2_npz)
    largest = [m for m, _ in Counter(full.mineral.tolist()).most_common(8)]
    subset = full.subset(np.flatnonzero(np.isin(full.mineral, largest)))
    subset.save(tmp_path / "eight.npz")

    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["fit", str(tmp_path / "eight.npz"), "--out", str(run), "--width", "0.125", "--epochs", "12", "--patience", "12", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    print("8-class test accuracy", metrics["test"]["accuracy"])
    assert metrics["n_classes"] == 8
    assert metrics["test"]["accuracy"] > 0.6  # chance is 1/8; measured in inference mode
    assert metrics["test"]["top3"] >= metrics["test"]["top1"]
    for name in ("training_curves.png", "confusion_matrix.png", "per_class.csv", "epochs.csv", "model.weights.h5"):
        assert (run / name).stat().st_size > 0

    again = runner.invoke(app, ["evaluate", str(run)])
    assert again.exit_code == 0, again.output
    assert json.loads((run / "metrics.json").read_text())["test"] == metrics["test"]


def test_evaluate_refuses_missing_or_incomplete_runs(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and result.output.strip() == f"error: {tmp_path / 'nothing'}: no such run folder"
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "half")])
    assert result.exit_code == 1 and "incomplete run folder, missing labels.json" in result.output


def test_grouped_fit_leaves_out_single_specimen_classes(dataset2_npz, tmp_path):
    full = load_published_npz(dataset2_npz)
    largest = [m for m, _ in Counter(full.mineral.tolist()).most_common(4)]
    single = next(m for m in sorted(set(full.mineral.tolist())) if len(set(full.specimen[full.mineral == m])) == 1)
    full.subset(np.flatnonzero(np.isin(full.mineral, largest + [single]))).save(tmp_path / "five.npz")
    run = tmp_path / "grouped"
    result = runner.invoke(
        app,
        ["fit", str(tmp_path / "five.npz"), "--out", str(run), "--split", "grouped", "--width", "0.0625", "--epochs", "2", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["excluded_classes"] == [single] and config["n_classes"] == 4
    assert single not in json.loads((run / "labels.json").read_text())
    assert json.loads((run / "metrics.json").read_text())["protocol"] == "grouped"


def test_a_run_can_continue_from_another(small_run, tmp_path):
    config = json.loads((small_run / "config.json").read_text())
    dataset = config["dataset"]
    base = json.loads((small_run / "metrics.json").read_text())["test"]["accuracy"]
    result = runner.invoke(
        app,
        ["fit", dataset, "--out", str(tmp_path / "more"), "--width", "0.125", "--epochs", "1", "--init-from", str(small_run), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "more" / "metrics.json").read_text())["test"]["accuracy"] >= base - 0.1  # not from scratch
    from trainer.export import epochs_kept
    from trainer.training import load_run

    start = load_run(small_run).config  # what a bundle's manifest says each part kept
    assert epochs_kept(load_run(tmp_path / "more")) == f"1 of 1, from {small_run.name}: {start.best_epoch} of {start.epochs_run}"
    other = runner.invoke(
        app, ["fit", dataset, "--out", str(tmp_path / "x"), "--width", "0.125", "--seed", "9", "--init-from", str(small_run), "--quiet"]
    )
    assert other.exit_code == 1 and "not the same dataset, classes, architecture, width, split and seed" in other.output


def test_resnet1d_is_compact_and_names_its_embedding():
    from trainer import resnet
    from trainer.model import make_model

    model = make_model("resnet1d", 192)
    softmax = model.get_layer("predictions")
    body = model.count_params() - softmax.count_params()
    assert 500_000 < body < 1_000_000  # "well under 1 M parameters" besides the softmax
    embedding = model.get_layer(resnet.EMBEDDING_LAYER)
    assert embedding.output.shape[-1] == resnet.EMBEDDING
    # the embedding is the penultimate representation: only dropout lies between it and the softmax
    assert model.layers[-2].name == "embedding_dropout" and model.layers[-3] is embedding
    # position kept: the head flattens 50 positions of 16 channels, no global pooling anywhere
    assert model.get_layer("flatten").output.shape[-1] == 50 * resnet.HEAD_CHANNELS
    assert not any("pooling" in type(layer).__name__.lower() for layer in model.layers)
    assert model.output_shape == (None, 192)


def test_unknown_architecture_is_one_line():
    from trainer.model import make_model

    with pytest.raises(ValueError, match="unknown architecture 'vgg'; choose one of sang2021, resnet1d"):
        make_model("vgg", 3)


def test_compact_model_with_augmentation_beats_chance_on_new_specimens(dataset2_npz, tmp_path):
    """resnet1d with physical augmentation, grouped split, 6 large Dataset_1 classes, a few CPU epochs."""
    full = load_published_npz(dataset2_npz)
    largest = [m for m, _ in Counter(full.mineral.tolist()).most_common(6)]
    full.subset(np.flatnonzero(np.isin(full.mineral, largest))).save(tmp_path / "six.npz")
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["fit", str(tmp_path / "six.npz"), "--out", str(run), "--arch", "resnet1d", "--width", "0.5", "--split", "grouped",
         "--epochs", "6", "--batch-size", "32", "--learning-rate", "2e-3", "--schedule", "cosine", "--augment", "physical", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    print("6-class grouped test accuracy", metrics["test"]["accuracy"])
    assert config["fit"]["arch"] == "resnet1d" and config["augmentation"]["noise_snr_min"] > 0
    assert metrics["test"]["accuracy"] > 0.6  # chance is 1/6, on specimens the model never saw


def test_a_bug_is_not_dressed_as_a_user_error(tmp_path, monkeypatch):
    """The CLI turns the project's error types into one line; any other exception keeps its traceback."""
    import trainer.training

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(trainer.training, "fit", broken)
    result = runner.invoke(app, ["fit", str(tmp_path / "x.npz"), "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, ValueError) and str(result.exception) == "an internal bug"
    assert "error: an internal bug" not in result.output
    result = runner.invoke(app, ["fit", str(tmp_path / "x.npz"), "--out", str(tmp_path / "run"), "--arch", "vgg"])
    assert result.exit_code == 1


def test_training_uses_the_fastest_installed_backend_unless_told(monkeypatch):
    import importlib.util

    from trainer import cli

    installed = {"tensorflow", "torch"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in installed else None)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert cli._use_fastest_backend() == "tensorflow"  # jax absent: the next fastest
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    installed.add("jax")
    assert cli._use_fastest_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert cli._use_fastest_backend() == "torch"  # an explicit choice is kept
