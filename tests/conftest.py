"""Shared fixtures: the read-only RRUFF data beside the checkout, and small hand-made files."""

from __future__ import annotations

import os
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RAMANEDGE_DATA", REPO.parent / "shared" / "data"))
DATASET2_NPZ = DATA / "rruff_dataset2_1570.npz"
SAMPLE_TAR = DATA / "rruff_excellent_sample.tar.xz"


#: Session fixtures worth building once: the tests that use one run in one pytest-xdist worker (`--dist loadgroup`).
SHARED_EXPENSIVE = {"small_run": "small-run", "int8_bundle": "small-run", "local_ray": "ray"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests on a trained run or a Ray cluster, so that two workers do not each train or start one."""
    for item in items:
        groups = {SHARED_EXPENSIVE[name] for name in getattr(item, "fixturenames", ()) if name in SHARED_EXPENSIVE}
        if groups:
            item.add_marker(pytest.mark.xdist_group(min(groups)))


@pytest.fixture(autouse=True)
def _own_user_library(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user library: each gets an empty one of its own."""
    monkeypatch.setenv("RAMANEDGE_LIBRARY", str(tmp_path_factory.mktemp("user_library")))


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared RRUFF data not found: {path} (set RAMANEDGE_DATA to its folder)")
    return path


@pytest.fixture(scope="session")
def dataset2_npz() -> Path:
    return _require(DATASET2_NPZ)


@pytest.fixture(scope="session")
def rruff_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 150 RAW/Processed pairs, unpacked once per test session into a temporary folder."""
    archive = _require(SAMPLE_TAR)
    target = tmp_path_factory.mktemp("rruff_sample")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    (folder,) = [p for p in target.iterdir() if p.is_dir()]
    return folder


@pytest.fixture
def write(tmp_path: Path):
    """Write a small fixture file (text or bytes) and return its path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
        return path

    return _write


def two_mineral_bundle(out: Path, model_bytes, embeddings=None):
    """A float32 bundle of minerals A and B around ``model_bytes`` (one TFLite model or an ensemble's), with two
    random library spectra and, optionally, an embedding search: for tests of the device's arithmetic."""
    from edge.bundle import Manifest, with_embedding_search, write_bundle
    from edge.library import ReferenceLibrary
    from ramancore.preprocessing import GRID

    spectra = np.random.default_rng(1).uniform(0, 1, (2, GRID.size))
    library = ReferenceLibrary(spectra, np.array(["A", "B"]), np.array(["a", "b"]), np.array(["bundle"] * 2))
    io = {"dtype": "float32", "shape": [1, GRID.size, 1], "scale": 0.0, "zero_point": 0}
    manifest = Manifest(
        precision="float32", n_classes=2, grid_cm1={"start": 30.0, "stop": 1599.0, "step": 1.0, "size": GRID.size},
        preprocessing="", input=io, output=io, training={}, files={},
    )
    bundle = write_bundle(out, model_bytes, ["A", "B"], library, [("A", spectra[0])], manifest)
    return bundle if embeddings is None else with_embedding_search(bundle, embeddings)


def two_column(xs, ys, sep: str = ", ", eol: str = "\n") -> str:
    return "".join(f"{x}{sep}{y}{eol}" for x, y in zip(xs, ys))


@pytest.fixture(scope="session")
def edge_bundle() -> Path:
    """The bundled model: the edge and listen tests run on it, with neither TensorFlow nor the RRUFF data."""
    from edge.bundle import DEFAULT_BUNDLE

    if not DEFAULT_BUNDLE.is_dir():
        pytest.skip(f"no bundled model in {DEFAULT_BUNDLE}")
    return DEFAULT_BUNDLE


@pytest.fixture(scope="session")
def six_classes(dataset2_npz, tmp_path_factory) -> Path:
    """The 6 largest Dataset_1 classes as a dataset file (about 600 spectra)."""
    from trainer.sources import load_published_npz

    root = tmp_path_factory.mktemp("export")
    full = load_published_npz(dataset2_npz)
    largest = [m for m, _ in Counter(full.mineral.tolist()).most_common(6)]
    full.subset(np.flatnonzero(np.isin(full.mineral, largest))).save(root / "six.npz")
    return root / "six.npz"


@pytest.fixture(scope="session")
def small_run(six_classes):
    """A narrow model on the 6 largest Dataset_1 classes: trained once, shared by the tests."""
    root = six_classes.parent
    from trainer.cli import app as trainer_app

    result = CliRunner().invoke(
        trainer_app,
        ["fit", str(six_classes), "--out", str(root / "run"), "--width", "0.125", "--epochs", "8", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture(scope="session")
def int8_bundle(small_run):
    from trainer.cli import app as trainer_app

    out = small_run.parent / "bundle"
    result = CliRunner().invoke(trainer_app, ["export", str(small_run), "--int8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "points against float32" in result.output
    return out


