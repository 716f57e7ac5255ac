"""Export a small trained run, then load, verify and run the bundle on the edge side."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.bundle import BundleError, load_bundle
from edge.cli import app as edge_app
from tests.conftest import two_mineral_bundle
from trainer.cli import app as trainer_app

pytestmark = pytest.mark.tensorflow
runner = CliRunner()


def test_int8_export_writes_a_verified_bundle_with_metrics(int8_bundle):
    bundle = load_bundle(int8_bundle)
    m = bundle.manifest.as_dict()
    assert m["precision"] == "int8" and m["n_classes"] == 6 == len(bundle.labels)
    assert m["input"]["dtype"] == "int8" and m["output"]["dtype"] == "int8" and m["input"]["shape"] == [1, 1570, 1]
    assert set(m["metrics"]) >= {"float32", "int8"}
    assert m["metrics"]["int8"]["top1"] > 0.6 and m["metrics"]["float32"]["top1"] > 0.6  # 6 classes: chance 1/6
    assert abs(m["metrics"]["float32"]["top1"] - m["metrics"]["int8"]["top1"]) < 0.05
    library = bundle.library()
    assert set(library.mineral_names) == set(bundle.labels) and library.spectra.shape[1] == 1570 and library.spectra.max() <= 1.0
    assert len(library) == m["library"]["spectra"] > 6  # every training spectrum, not a median per class
    assert bundle.demo_spectra() and m["calibration"]["temperature"] > 0 and 0 < m["calibration"]["identified"] <= 1
    assert set(m["metrics"]["answers"]) >= {"model", "library", "fused"}


def test_export_chooses_the_input_smoothing_on_validation(int8_bundle):
    """Every window is scored on the run's validation spectra; the best ships, the smallest among equals."""
    from trainer.export import SMOOTHING_WINDOWS_CM1

    smoothing = load_bundle(int8_bundle).manifest.input_smoothing
    scores = {float(w): v for w, v in smoothing["validation_top1_by_window"].items()}
    assert set(scores) == set(SMOOTHING_WINDOWS_CM1) and smoothing["fitted_on"].startswith("run validation")
    best = max(scores.values())
    assert smoothing["window_cm1"] == min(w for w, v in scores.items() if v == best)


def test_classify_json_keys_and_bad_files(int8_bundle, rruff_sample, tmp_path):
    good = sorted(rruff_sample.glob("*Processed*.txt"))[:2]
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\n")
    result = runner.invoke(
        edge_app, ["classify", *map(str, good), str(bad), "--model", str(int8_bundle), "--json", "--top", "3"]
    )
    assert result.exit_code == 1  # a bad file makes the run fail at the end, after the good ones
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["file"] for r in lines] == [str(p) for p in good]
    for record in lines:
        assert set(record) == {"schema", "file", "top", "model", "latency_ms", "state", "confidence", "library_hit", "source", "group"}
        assert record["schema"] == 5 and record["source"] == "model" and 0 <= record["library_hit"]["hqi"] <= 1000
        assert record["state"] in ("identified", "possible match", "not in library")
        assert len(record["top"]) == 3 and set(record["top"][0]) == {"mineral", "probability"}
        probabilities = [t["probability"] for t in record["top"]]
        assert probabilities == sorted(probabilities, reverse=True)
    assert f"{bad}: line 1: one column" in result.output


def test_info_json_carries_the_export_metrics(int8_bundle):
    result = runner.invoke(edge_app, ["info", "--model", str(int8_bundle), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert set(info["metrics"]["float32"]) == {"top1", "top3"} == set(info["metrics"]["int8"])
    assert info["runtime"].startswith("ai-edge-litert")


def _corrupt_library_with_matching_hash(bundle):
    from edge.bundle import sha256_of

    (bundle / "library.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    _edit_manifest(bundle, files={**json.loads((bundle / "manifest.json").read_text())["files"], "library.npz": sha256_of(bundle / "library.npz")})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: (b / "model.tflite").write_bytes((b / "model.tflite").read_bytes()[:-10]), "model.tflite does not match its sha256"),
        (lambda b: (b / "labels.json").write_text(json.dumps(["a", "b"])), "labels.json does not match its sha256"),
        (lambda b: (b / "library.npz").unlink(), "library.npz is missing"),
        (lambda b: _edit_manifest(b, format_version=99), "bundle format version 99 is not supported"),
        (lambda b: _edit_manifest(b, n_classes=7), "6 labels but the manifest says 7 classes"),
        (lambda b: (b / "manifest.json").unlink(), "not a model bundle (no manifest.json)"),
        (lambda b: (b / "manifest.json").write_text("[]"), "manifest.json is not a JSON object (got list)"),
        (_corrupt_library_with_matching_hash, "unreadable library.npz"),
    ],
)
def test_damaged_bundles_are_refused_in_one_line(int8_bundle, tmp_path, damage, message):
    copy = tmp_path / "bundle"
    shutil.copytree(int8_bundle, copy)
    damage(copy)
    with pytest.raises(BundleError, match="^" + str(copy).replace(".", r"\.")):
        load_bundle(copy)
    result = runner.invoke(edge_app, ["info", "--model", str(copy)])
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1


def _edit_manifest(bundle, **changes):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(changes)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_classification_path_never_imports_tensorflow(int8_bundle, rruff_sample):
    spectrum = sorted(rruff_sample.glob("*Processed*.txt"))[0]
    code = (
        "import sys; from edge.cli import app; from typer.testing import CliRunner;"
        f"r = CliRunner().invoke(app, ['classify', {str(spectrum)!r}, '--model', {str(int8_bundle)!r}, '--json']);"
        "assert r.exit_code == 0, r.output;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras'});"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"imported: {result.stdout} {result.stderr[-500:]}"


def test_export_refuses_a_model_whose_batchnorm_statistics_are_off(small_run, int8_bundle, tmp_path):
    """Moving statistics far from the batch statistics: the float model is wrong in inference mode."""
    from trainer.export import ExportError, export
    from trainer.training import load_run

    broken = tmp_path / "broken"
    shutil.copytree(small_run, broken)
    run = load_run(broken)
    model = run.build_trained_model()
    bn = model.get_layer("fc1_bn")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma, beta, mean + 50.0 * np.sqrt(var + 1e-3), var])
    model.save_weights(broken / "model.weights.h5")
    previous = tmp_path / "out"
    shutil.copytree(int8_bundle, previous)
    with pytest.raises(ExportError, match="BatchNorm moving statistics are off"):
        export(broken, previous, "int8", log=lambda _: None)
    # a refused export leaves the bundle that was there as it was, and no staging folder beside it
    assert load_bundle(previous).manifest == load_bundle(int8_bundle).manifest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_an_ensemble_bundle_averages_its_members(tmp_path):
    """Two tiny models whose outputs are known (a constant softmax each): the device answers their mean."""
    import keras

    from edge.runtime import Classifier
    from ramancore.preprocessing import GRID
    from trainer.export import convert

    def constant(p):
        inputs = keras.Input((GRID.size, 1))
        dense = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(np.log(p)))
        return keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))

    representative = np.random.default_rng(0).uniform(0, 1, (4, GRID.size)).astype(np.float32)
    members = [convert(constant([0.9, 0.1]), "float32", representative), convert(constant([0.3, 0.7]), "float32", representative)]
    spectrum = np.random.default_rng(1).uniform(0, 1, GRID.size)
    bundle = two_mineral_bundle(tmp_path / "ensemble", members)
    assert bundle.manifest.members == ["model.tflite", "model-1.tflite"] and bundle.model_id.startswith("float32x2-")
    np.testing.assert_allclose(Classifier(bundle, num_threads=1).probabilities(spectrum), [0.6, 0.4], atol=1e-5)
    single = two_mineral_bundle(tmp_path / "single", members[0])
    np.testing.assert_allclose(Classifier(single, num_threads=1).probabilities(spectrum), [0.9, 0.1], atol=1e-5)


def test_export_errors_are_one_line(tmp_path, small_run):
    result = runner.invoke(trainer_app, ["export", str(tmp_path / "none"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and result.output.strip() == f"error: {tmp_path / 'none'}: no such run folder"
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    result = runner.invoke(trainer_app, ["export", str(small_run), "--out", str(tmp_path / "occupied")])
    assert result.exit_code == 1 and "exists and is not a model bundle" in result.output
    assert (tmp_path / "occupied" / "notes.txt").exists()


def test_export_refuses_degenerate_or_drifted_quantised_models():
    """int8 top-1 1.0000 against float 0.0833 once passed as "meets the target": each way it can lie is refused."""
    from trainer.export import ExportError, check_exported

    rng = np.random.default_rng(0)
    good = rng.dirichlet(np.ones(6), size=40)
    ok = {"top1": 0.80, "top3": 0.95}
    check_exported("int8", good, ok, {"top1": 0.81, "top3": 0.95})  # a sound model passes
    with pytest.raises(ExportError, match="same outputs for every test spectrum"):
        check_exported("int8", np.tile(good[0], (40, 1)), ok, ok)
    tied = good.copy()
    tied[:30] = [0.4, 0.4, 0.05, 0.05, 0.05, 0.05]  # 30 of 40 spectra tie for first place
    with pytest.raises(ExportError, match="ties for first place on 75 %"):
        check_exported("int8", tied, ok, ok)
    with pytest.raises(ExportError, match=r"differs from float32 0.0833 by \+91.67 points"):
        check_exported("int8", good, {"top1": 1.0, "top3": 1.0}, {"top1": 0.0833, "top3": 0.2})
    with pytest.raises(ExportError, match=r"by -2.50 points"):
        check_exported("int8", good, {"top1": 0.775, "top3": 0.9}, ok)




def test_version_and_argument_checks_are_one_line(int8_bundle, rruff_sample):
    from importlib.metadata import version

    assert runner.invoke(edge_app, ["--version"]).stdout.strip() == f"ramanedge {version('ramanedge')}"
    assert runner.invoke(trainer_app, ["--version"]).stdout.strip() == f"trainer (ramanedge) {version('ramanedge')}"
    spectrum = str(sorted(rruff_sample.glob("*Processed*.txt"))[0])
    for top, message in (("-1", "Invalid value for '--top'"), ("5000", "--top 5000: the model and libraries know 6 minerals")):
        result = runner.invoke(edge_app, ["classify", spectrum, "--model", str(int8_bundle), "--top", top])
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_trainer_fit_on_a_spectrum_file_says_what_to_do(tmp_path):
    csv = tmp_path / "quartz.csv"
    csv.write_text("100, 1\n200, 2\n")
    result = runner.invoke(trainer_app, ["fit", str(csv), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "not a dataset file from `trainer prepare`" in result.output and "trainer prepare quartz.csv" in result.output
    assert "pickled" not in result.output


def test_bundle_writer_and_reader_agree(tmp_path):
    """The format in one place: what write_bundle writes, load_bundle reads back, typed; scores added after."""
    from edge.bundle import Manifest, with_metrics, write_bundle
    from ramancore.preprocessing import GRID

    manifest = Manifest(
        precision="int8", n_classes=2,
        grid_cm1={"start": float(GRID[0]), "stop": float(GRID[-1]), "step": 1.0, "size": int(GRID.size)},
        preprocessing="ramancore.preprocessing.preprocess", input={"dtype": "int8"}, output={"dtype": "int8"},
        training={"arch": "resnet1d"}, files={},
    )
    from edge.library import ReferenceLibrary

    spectra = np.zeros((3, GRID.size))
    spectra[:, 100:200] = np.linspace(0, 1, 100)
    library = ReferenceLibrary(spectra, ["Calcite", "Quartz", "Quartz"], ["R1", "R2", "R3"], ["bundle"] * 3)
    bundle = write_bundle(tmp_path / "b", b"not a real model", ["Calcite", "Quartz"], library, [("Quartz", spectra[1])], manifest)
    assert bundle.manifest.files.keys() == {"model.tflite", "labels.json", "library.npz", "demo.npz"} and bundle.manifest.created
    read = bundle.library()
    assert read.ids.tolist() == ["R1", "R2", "R3"] and np.allclose(read.spectra, spectra, atol=1 / 255)
    assert bundle.demo_spectra()[0][0] == "Quartz"
    assert bundle.model_id.startswith("int8-") and bundle.labels == ["Calcite", "Quartz"]
    scored = with_metrics(bundle, {"int8": {"top1": 0.9}}, {"protocol": "grouped"})
    assert load_bundle(tmp_path / "b").manifest == scored.manifest
    assert scored.manifest.metrics["int8"]["top1"] == 0.9 and scored.manifest.metrics_other_protocol == {"protocol": "grouped"}
    assert not (tmp_path / "b" / "manifest.json.tmp").exists()


def test_a_mineral_left_out_of_training_is_named_from_one_user_spectrum(int8_bundle, rruff_sample, tmp_path):
    """The six-mineral model knows none of these twin minerals: one Processed spectrum of each in the
    user library, and the mineral's other spectra are named from it, with no retraining."""
    from edge.identifier import Identifier
    from edge.model_input import read_model_input
    from edge.user_library import UserLibrary

    bundle = load_bundle(int8_bundle)
    by_mineral: dict[str, list] = {}
    for path in sorted(rruff_sample.glob("*Processed*.txt")):
        mineral = path.name.split("__")[0]
        if mineral not in bundle.labels:
            by_mineral.setdefault(mineral, []).append(path)
    cases = {m: files for m, files in by_mineral.items() if len(files) >= 2}
    assert len(cases) >= 10
    named = total = 0
    for mineral, files in cases.items():
        user = UserLibrary(tmp_path / mineral)
        user.add(mineral, read_model_input(files[0]).vector, files[0].name)
        identifier = Identifier(bundle, user, num_threads=1)
        for other in files[1:]:
            read = read_model_input(other)
            answer = identifier.answer(read.y, read.vector)
            total += 1
            if answer.top[0][0] == mineral:
                named += 1
                assert answer.source == "user library" and answer.library_hit["source"] == "user"
        held_out = read_model_input(files[1])
        before = Identifier(bundle, None, num_threads=1).answer(held_out.y, held_out.vector)
        assert before.top[0][0] != mineral  # without the entry it cannot be named
    assert named / total >= 0.7, f"{named} of {total}"


def test_a_production_bundle_holds_every_spectrum_and_its_grouped_twins_figures(six_classes, tmp_path):
    """--split all: trained on every row, exported with the grouped run of the same recipe, whose figures and
    calibration it ships; its library holds every spectrum of the dataset."""
    from trainer.dataset import SpectraDataset
    from trainer.training import load_run

    recipe = ["--arch", "resnet1d", "--width", "0.125", "--epochs", "3", "--patience", "3", "--quiet"]
    for split, out in (("all", "all"), ("grouped", "grouped")):
        result = runner.invoke(trainer_app, ["fit", str(six_classes), "--out", str(tmp_path / out), "--split", split, *recipe])
        assert result.exit_code == 0, result.output
    dataset = SpectraDataset.load(six_classes)
    assert len(load_run(tmp_path / "all").split.train) == len(dataset)  # every row
    refused = runner.invoke(trainer_app, ["export", str(tmp_path / "all"), "--float32", "--out", str(tmp_path / "alone")])
    assert refused.exit_code == 1 and "--other-protocol-run GROUPED_RUN" in refused.output
    result = runner.invoke(
        trainer_app,
        ["export", str(tmp_path / "all"), "--float32", "--other-protocol-run", str(tmp_path / "grouped"), "--out", str(tmp_path / "bundle")],
    )
    assert result.exit_code == 0, result.output
    bundle = load_bundle(tmp_path / "bundle")
    assert len(bundle.library()) == len(dataset) == bundle.manifest.library["spectra"]
    assert bundle.manifest.metrics_other_protocol["protocol"] == "grouped" and "every spectrum" in bundle.manifest.training["data"]
    assert bundle.manifest.calibration["fitted"]["on"].startswith("grouped validation")
    # which epoch each kept: the twin speaks for the shipped model only if they kept alike
    assert bundle.manifest.training["epochs_kept"] == "3 of 3"  # no validation: the last
    twin_config = load_run(tmp_path / "grouped").config
    assert bundle.manifest.metrics_other_protocol["epochs_kept"] == f"{twin_config.best_epoch} of {twin_config.epochs_run}"
    kept = f"3 of 3; its grouped twin: {twin_config.best_epoch} of {twin_config.epochs_run}"
    assert dict(bundle.manifest.summary_rows())["epochs kept"] == kept  # what `ramanedge info` shows
    # resnet1d has an embedding layer: the bundle searches every spectrum's embedding, with its grouped twin's weight
    (search,) = bundle.embedding_searches()
    assert len(search.classes) == len(dataset)
    twin = bundle.manifest.metrics_other_protocol["embedding_search"]
    assert twin["fitted_on"].startswith("grouped validation") and "grouped run" in bundle.manifest.embedding_search["fitted_on"]
    assert search.weight == twin["weight"]
    # and its model input smoothing, chosen there too
    assert bundle.manifest.input_smoothing["fitted_on"].startswith("grouped validation")
    assert bundle.manifest.smoothing_cm1 == bundle.manifest.metrics_other_protocol["input_smoothing_cm1"]
    # an evidence gate fitted on answers from another library (with the fair/poor files in it) is refused, in one line
    figures = {"threshold": 0.5, "precision": 1.0, "coverage": 0.5, "fair_precision": 1.0, "fair_coverage": 0.5, "unknown_identified": 0.0}
    report = {"run": "open", "seed": 0, "evidence_gate": {}, "gates": {"evidence (logistic)": {"test": figures}}, "library_field_files": 12}
    (tmp_path / "open_set.json").write_text(json.dumps(report))

    def refused_export(*extra: str) -> str:
        """The output of an export of run "all" with its grouped twin and ``extra`` options, which must be refused."""
        twin = ["--other-protocol-run", str(tmp_path / "grouped")]
        result = runner.invoke(trainer_app, ["export", str(tmp_path / "all"), "--float32", *twin, *extra, "--out", str(tmp_path / "gated")])
        assert result.exit_code == 1 and not (tmp_path / "gated").exists()
        return result.output

    gated = ("--evidence-gate", str(tmp_path / "open_set.json"))
    assert "fitted with the fair/poor files in the library" in refused_export(*gated)
    # and a gate fitted on two members' averaged answers, for a bundle of one model
    (tmp_path / "open_set.json").write_text(json.dumps({**report, "library_field_files": 0, "members": 2}))
    assert "fitted on the answers of 2 model(s) averaged, this bundle averages 1" in refused_export(*gated)
    # a grouped twin of two members for an exported model of one: its figures would not speak for it
    assert "the other protocol's ensemble has 2 member(s), this one 1" in refused_export("--other-protocol-run", str(tmp_path / "grouped"))
    # an ensemble of two members (a second of each, from init seed 1): an embedding search per member, each member's
    # weight its grouped twin member's (the smoothing given: its window fit would refit both searches seven times)
    for split, out in (("all", "all-1"), ("grouped", "grouped-1")):
        result = runner.invoke(trainer_app, ["fit", str(six_classes), "--out", str(tmp_path / out), "--split", split, "--init-seed", "1", *recipe])
        assert result.exit_code == 0, result.output
    result = runner.invoke(
        trainer_app,
        ["export", str(tmp_path / "all"), str(tmp_path / "all-1"), "--float32", "--other-protocol-run", str(tmp_path / "grouped"),
         "--other-protocol-run", str(tmp_path / "grouped-1"), "--input-smoothing", "0", "--out", str(tmp_path / "pair")],
    )
    assert result.exit_code == 0, result.output
    pair = load_bundle(tmp_path / "pair")
    searches = pair.embedding_searches()
    twin_weights = pair.manifest.metrics_other_protocol["embedding_search"]["weights"]
    assert pair.manifest.training["ensemble"] == ["all", "all-1"] and [s.weight for s in searches] == twin_weights
    assert all(len(s.classes) == len(dataset) for s in searches) and not np.allclose(searches[0].vectors, searches[1].vectors)
