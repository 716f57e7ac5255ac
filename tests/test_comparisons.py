"""The paper's comparisons: classic baselines grid-searched inside the training part, the other
Table 3 CNNs, and repeats that resume, locally or on Ray."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow


@pytest.mark.parametrize("name", ["knn1", "knn5", "tree", "forest", "pca_svm_linear", "pca_svm_rbf", "correlation"])
def test_each_baseline_beats_chance_widely(six_classes, name):
    from trainer.baselines import run_one
    from trainer.dataset import SpectraDataset

    record = run_one(name, SpectraDataset.load(six_classes), "grouped", seed=0)
    assert record["test"]["accuracy"] > 0.6  # chance: 1/6
    assert set(record["test"]) >= {"accuracy", "f1_weighted", "roc_auc", "top3"}
    assert set(record["test_field_degraded"]) == {"top1", "top3", "top5"}


def test_grid_search_never_sees_a_test_spectrum(six_classes, monkeypatch):
    import trainer.baselines as baselines
    from trainer.dataset import SpectraDataset
    from trainer.splits import make_split

    dataset = SpectraDataset.load(six_classes)
    seen: list[np.ndarray] = []

    class Spy(baselines.GridSearchCV):
        def fit(self, X, y=None, **kw):
            seen.append(np.asarray(X))
            for train, validate in self.cv:  # the folds, too, index only the rows it was given
                assert max(train.max(), validate.max()) < len(X)
            return super().fit(X, y, **kw)

    monkeypatch.setattr(baselines, "GridSearchCV", Spy)
    full_search = baselines.make_search

    def smaller_grid(name: str, seed: int, n_jobs: int = 1):  # which rows the search sees, not its grid, is tested here
        estimator, grid = full_search(name, seed, n_jobs)
        return estimator, {key: values[:2] for key, values in grid.items()}

    monkeypatch.setattr(baselines, "make_search", smaller_grid)
    for protocol in ("random", "grouped"):
        record = baselines.run_one("pca_svm_linear", dataset, protocol, seed=1)
        split = make_split(protocol, dataset.mineral, dataset.specimen, 1)
        assert record["test_rows"] == split.test.tolist()
        assert not set(record["grid_search_rows"]) & set(split.test.tolist())
        test_spectra = {row.tobytes() for row in dataset.X[split.test]}
        assert not any(row.tobytes() in test_spectra for row in seen[-1])
        assert len(seen[-1]) == len(split.train) + len(split.val)


def test_scores_are_computed_a_few_spectra_at_a_time_in_label_order():
    from trainer.baselines import SCORE_ROWS, scores_of

    calls: list[int] = []

    class ManyClassSVM:  # one-vs-one decision values for 1332 classes take 7 MB a spectrum: never all at once
        classes_ = np.array([0, 2, 3])

        def decision_function(self, X):
            calls.append(len(X))
            return X[:, :3] * [1.0, 2.0, 3.0]

    X = np.random.default_rng(0).uniform(size=(2 * SCORE_ROWS + 5, 4))
    scores = scores_of(ManyClassSVM(), X, 5)
    assert calls == [SCORE_ROWS, SCORE_ROWS, 5]
    np.testing.assert_array_equal(scores[:, [0, 2, 3]], X[:, :3] * [1.0, 2.0, 3.0])
    assert (scores[:, [1, 4]] < scores[:, [0, 2, 3]].min()).all()  # classes the model never saw rank last


def test_svm_one_vs_rest_scores_equal_scikit_learns():
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    from trainer.baselines import one_vs_rest, scores_of

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 15)
    X = rng.normal(size=(len(y), 12)) + 0.3 * y[:, None]
    svm = SVC(kernel="linear").fit(X, y)
    np.testing.assert_array_equal(one_vs_rest(svm, X), svm.decision_function(X))  # votes and squashed confidences, exactly
    pipeline = Pipeline([("pca", PCA(5)), ("svm", SVC())]).fit(X, y)
    np.testing.assert_array_equal(scores_of(pipeline, X[:40], 7), pipeline.decision_function(X[:40]))

    from sklearn.utils.multiclass import _ovr_decision_function  # scikit-learn's own rule, ties included

    values = np.array([[0.0, -1.0, 2.0, 0.0, -0.5, 0.0], [-2.0, 0.0, 0.0, 1.0, 0.0, -3.0]])  # 4 classes, 6 pairs

    class Tied(SVC):  # a pair decided at exactly 0 goes to the pair's first class
        classes_ = np.arange(4)

        def decision_function(self, X):
            return values

    np.testing.assert_array_equal(one_vs_rest(Tied(), values), _ovr_decision_function(values < 0, -values, 4))


@pytest.mark.parametrize("arch", ["liu2017", "fan2019"])
def test_table3_networks_have_their_sources_shapes_and_train(arch):
    import keras

    from trainer.liu_fan_cnns import expected_parameters
    from trainer.model import compile_model, make_model

    keras.utils.set_random_seed(0)  # the initial weights: not whatever a worker's earlier tests left the generators in
    model = make_model(arch, 7)
    assert model.count_params() == expected_parameters(arch, 7)
    assert model.count_params() == {"liu2017": 24_805_767, "fan2019": 6_502_599}[arch]  # by hand: 12096x2048 and 6336x1024 dense inputs
    compile_model(model, 1e-4)  # the paper's learning rate
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (16, 1570, 1)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 7, 7)
    losses = [float(np.ravel(model.train_on_batch(X, y))[0]) for _ in range(8)]  # training-mode loss: BatchNorm's own statistics
    assert losses[-1] < 0.95 * losses[0]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module's Ray tests: its workers stay warm."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    yield ray
    ray.shutdown()


def test_repeat_on_ray_runs_tasks_and_resumes(six_classes, tmp_path, local_ray):
    from trainer.repeat import repeat
    from trainer.training import FitConfig

    _repeat_twice_on_ray(six_classes, tmp_path, repeat, FitConfig(arch="fan2019", width=0.0625, epochs=1, patience=1))
    assert local_ray.is_initialized()  # a Ray the caller started is left running


def test_baseline_grid_searches_run_on_rays_joblib_backend(six_classes, tmp_path, local_ray, monkeypatch):
    import joblib

    import trainer.baselines as baselines

    backends: list[str] = []

    class Spy(baselines.GridSearchCV):
        def fit(self, X, y=None, **kw):
            backends.append(type(joblib.parallel.get_active_backend()[0]).__name__)
            return super().fit(X, y, **kw)

    monkeypatch.setattr(baselines, "GridSearchCV", Spy)
    summary = baselines.run_baselines(six_classes, tmp_path / "ray", 1, ("knn1",), ("grouped",), n_jobs=2, log=lambda _: None, executor="ray")
    baselines.run_baselines(six_classes, tmp_path / "local", 1, ("knn1",), ("grouped",), n_jobs=2, log=lambda _: None)
    assert backends == ["RayBackend", "LokyBackend"]
    assert summary["summary"]["knn1 (grouped)"]["accuracy"]["mean"] > 0.6


def _repeat_twice_on_ray(six_classes, tmp_path, repeat, base):
    import shutil

    first = repeat(six_classes, tmp_path, 1, base, ("random", "grouped"), executor="ray")
    assert first["missing"] == {} and len(first["results"]["random"]) == len(first["results"]["grouped"]) == 1
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["fan2019-grouped-seed0", "fan2019-random-seed0"]
    kept = (tmp_path / runs[0] / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(tmp_path / runs[1])
    second = repeat(six_classes, tmp_path, 1, base, ("random", "grouped"), executor="ray")
    assert (tmp_path / runs[0] / "metrics.json").stat().st_mtime_ns == kept  # finished: skipped
    assert (tmp_path / runs[1] / "metrics.json").is_file() and second["missing"] == {}
    assert json.loads((tmp_path / "summary.json").read_text())["executor"] == "ray"


def test_local_executor_needs_no_ray_and_reports_failures(six_classes, tmp_path, monkeypatch):
    from trainer.repeat import repeat
    from trainer.training import FitConfig

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    summary = repeat(six_classes, tmp_path, 1, FitConfig(arch="fan2019", width=0.0625, epochs=1, patience=1), ("random",))
    assert summary["missing"] == {} and summary["executor"] == "local"
    assert summary["fit"]["arch"] == "fan2019" and "protocol" not in summary["fit"]  # the recipe, not the first run's split
    not_a_set = tmp_path / "not_a_set.tar.xz"
    not_a_set.write_text("not an archive")  # passes FitConfig's checks, fails when the run reads it
    broken = repeat(six_classes, tmp_path / "b", 1, FitConfig(arch="fan2019", width=0.0625, epochs=1, extra_train=str(not_a_set)), ("random",))
    assert list(broken["missing"]) == ["fan2019-random-seed0"] and "not a readable fair/poor set" in broken["missing"]["fan2019-random-seed0"]
    from trainer.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown architecture"):  # a typo is refused before any run starts
        FitConfig(arch="nonesuch", epochs=1)

    with pytest.raises(ConfigError, match="needs Ray"):
        repeat(six_classes, tmp_path / "c", 1, FitConfig(arch="fan2019", epochs=1), ("random",), executor="ray")


def test_baseline_on_ray_only_summarising_needs_no_ray(six_classes, tmp_path, monkeypatch):
    import trainer.baselines as baselines
    import trainer.cluster as cluster

    baselines.run_baselines(six_classes, tmp_path, 1, ("knn1",), ("grouped",), log=lambda _: None)

    def no_ray(address=None):
        raise AssertionError("Ray was started although every result was on disk")

    monkeypatch.setattr(cluster, "connected_ray", no_ray)
    summary = baselines.run_baselines(six_classes, tmp_path, 1, ("knn1",), ("grouped",), log=lambda _: None, executor="ray")
    assert summary["summary"]["knn1 (grouped)"]["accuracy"]["mean"] > 0.6


def test_field_degraded_scores_are_completed_by_refitting_the_chosen_hyper_parameters(six_classes, tmp_path, monkeypatch):
    import trainer.baselines as baselines
    from trainer.errors import SplitError

    degraded_with: list[tuple[int, int]] = []
    field_degrade = baselines.field_degrade

    def spy(X, seed=0):
        degraded_with.append((len(X), seed))
        return field_degrade(X, seed=seed)

    monkeypatch.setattr(baselines, "field_degrade", spy)
    first = baselines.run_baselines(six_classes, tmp_path, 1, ("tree",), ("grouped",), first_seed=2, log=lambda _: None)
    path = tmp_path / "grouped-seed2" / "tree.json"
    record = json.loads(path.read_text())
    assert degraded_with == [(len(record["test_rows"]), 2)]  # the test spectra, degraded with the split's seed
    assert first["field_degraded"]["tree (grouped)"]["top1"]["mean"] == record["test_field_degraded"]["top1"]

    path.write_text(json.dumps({k: v for k, v in record.items() if k != "test_field_degraded"}))  # an older result
    assert baselines.run_baselines(six_classes, tmp_path, 1, ("tree",), ("grouped",), first_seed=2, log=lambda _: None)["field_degraded"] == {}
    completed = baselines.run_baselines(six_classes, tmp_path, 1, ("tree",), ("grouped",), first_seed=2, log=lambda _: None, complete_field=True)
    assert json.loads(path.read_text()) == record  # the refitted tree is the grid search's tree
    assert completed["field_degraded"] == first["field_degraded"]

    path.write_text(json.dumps({**{k: v for k, v in record.items() if k != "test_field_degraded"}, "test_rows": [0]}))
    with pytest.raises(SplitError, match="no longer has the result's rows"):
        baselines.run_baselines(six_classes, tmp_path, 1, ("tree",), ("grouped",), first_seed=2, log=lambda _: None, complete_field=True)


def test_cnn_runs_beside_the_baselines_say_width_and_how_many_runs(tmp_path):
    from trainer.baselines import repeat_runs

    run = {"accuracy": 0.8}
    narrow = tmp_path / "cpu" / "summary.json"
    narrow.parent.mkdir()
    narrow.write_text(json.dumps({"fit": {"arch": "sang2021", "width": 0.25}, "results": {"grouped": [run]}}))
    full = tmp_path / "h100" / "summary.json"
    full.parent.mkdir()
    full.write_text(json.dumps({"fit": {"arch": "liu2017", "width": 1.0}, "results": {"random": [run] * 5, "grouped": [run] * 4}}))
    assert repeat_runs(narrow) == {"sang2021 w0.25 (grouped, 1 run, cpu)": [run]}
    assert repeat_runs(full) == {"liu2017 (random, 5 runs, h100)": [run] * 5, "liu2017 (grouped, 4 runs, h100)": [run] * 4}


def test_summaries_pair_the_runs_split_by_split_after_their_folders_are_gone(six_classes, tmp_path):
    import shutil
    from pathlib import Path

    import trainer.baselines as baselines
    from trainer.repeat import repeat
    from trainer.training import FitConfig

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from paired_splits import load, paired_rows

    repeat(six_classes, tmp_path / "cnn", 2, FitConfig(arch="fan2019", width=0.0625, epochs=1, patience=1), ("grouped",), quiet=True)
    baselines.run_baselines(six_classes, tmp_path / "base", 2, ("correlation",), ("grouped",), log=lambda _: None)
    cnn, base = tmp_path / "cnn" / "summary.json", f"{tmp_path / 'base' / 'summary.json'}:correlation"
    from_folders = paired_rows(load(str(tmp_path / "cnn"), "top1"), load(f"{tmp_path / 'base'}:correlation", "top1"), "A", "B")
    assert len(from_folders) == 5  # two splits and their mean
    field = [load(side, "top3", "test_field_degraded") for side in (str(tmp_path / "cnn"), f"{tmp_path / 'base'}:correlation")]

    for run in (tmp_path / "cnn").glob("fan2019-grouped-seed*"):
        shutil.rmtree(run)
    shutil.rmtree(tmp_path / "base" / "grouped-seed0")
    assert paired_rows(load(str(cnn), "top1"), load(base, "top1"), "A", "B") == from_folders
    assert [load(side, "top3", "test_field_degraded") for side in (str(cnn), base)] == field

    older = json.loads(cnn.read_text())  # a summary written before summaries had `splits`
    del older["splits"]
    cnn.write_text(json.dumps(older))
    assert paired_rows(load(str(cnn), "top1", dataset=six_classes), load(base, "top1"), "A", "B") == from_folders


def test_repeat_summary_only_gathers_runs_from_two_processes_and_trains_nothing(six_classes, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from trainer.cli import app
    from trainer.repeat import repeat
    from trainer.training import FitConfig

    for seed in (0, 1):  # as two processes would, each into its own folder
        repeat(six_classes, tmp_path / f"p{seed}", 1, FitConfig(arch="fan2019", width=0.0625, epochs=1, patience=1, seed=seed), ("random",))
    gathered = tmp_path / "p0"
    shutil.move(tmp_path / "p1" / "fan2019-random-seed1", gathered)
    args = ["repeat", str(six_classes), "--out", str(gathered), "--arch", "fan2019", "--width", "0.0625", "--epochs", "1"]
    result = CliRunner().invoke(app, [*args, "--protocols", "random", "--n", "3", "--summary-only", "--quiet"])
    summary = json.loads((gathered / "summary.json").read_text())
    assert len(summary["results"]["random"]) == 2 and summary["summary"]["random"]["accuracy"]["std"] > 0
    assert summary["missing"] == {"fan2019-random-seed2": "not finished (summary only)"}
    assert not (gathered / "fan2019-random-seed2").exists()  # nothing trained
    assert result.exit_code == 1 and "fan2019-random-seed2" in result.output
    field = [json.loads((gathered / f"fan2019-random-seed{s}" / "metrics.json").read_text())["test_field_degraded"]["top1"] for s in (0, 1)]
    assert summary["field_degraded"]["random"]["top1"]["mean"] == pytest.approx(sum(field) / 2)
    older = gathered / "fan2019-random-seed1" / "metrics.json"  # a run evaluated before field-degraded scores existed
    older.write_text(json.dumps({k: v for k, v in json.loads(older.read_text()).items() if k != "test_field_degraded"}))
    CliRunner().invoke(app, [*args, "--protocols", "random", "--n", "2", "--summary-only", "--quiet"])
    summary = json.loads((gathered / "summary.json").read_text())
    assert len(summary["results"]["random"]) == 2 and summary["field_degraded"] == {}  # no field figure from fewer runs than the row
    assert summary["diverged"] == {"random": []}
    history = gathered / "fan2019-random-seed0" / "history.json"
    history.write_text(json.dumps({**json.loads(history.read_text()), "loss": [4.0, 0.2, 0.5, 2.5]}))  # blew up after epoch 2
    result = CliRunner().invoke(app, [*args, "--protocols", "random", "--n", "2", "--summary-only", "--quiet"])
    summary = json.loads((gathered / "summary.json").read_text())
    assert summary["diverged"] == {"random": ["fan2019-random-seed0"]} and "diverged in training" in result.output


@pytest.mark.parametrize(
    ("loss", "expected"), [([4.0, 0.2, 0.5], False), ([4.0, 0.2, 0.5, 2.5], True), ([0.3], False), ([], False)]
)
def test_a_run_whose_training_loss_ends_ten_times_its_lowest_diverged(tmp_path, loss, expected):
    from trainer.repeat import diverged

    (tmp_path / "history.json").write_text(json.dumps({"loss": loss, "accuracy": [0.5] * len(loss)}))
    assert diverged(tmp_path) is expected
    assert diverged(tmp_path / "no-run") is None
