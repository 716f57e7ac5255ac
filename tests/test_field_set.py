"""The grouped-fair yardstick: which fair/poor files a run is scored on, or may train on, and the recipe checks
around the production fit (``--split all``, ``--extra-train``)."""

from __future__ import annotations

import csv
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.library import Calibration, Matcher, ReferenceLibrary
from ramancore.preprocessing import GRID, GRID_SIZE
from trainer.errors import ConfigError
from trainer.field_set import flat_test_figures, grouped_fair, load_field_set
from trainer.splits import make_split
from trainer.training import FitConfig

#: (mineral, specimen, quality, kind): a hand-made set over three specimens of two minerals and one unknown mineral
FILES = [
    ("Quartz", "R1", "fair", "processed"),
    ("Quartz", "R1", "fair", "raw"),
    ("Quartz", "R2", "poor", "processed"),
    ("Calcite", "R3", "fair", "processed"),
    ("Calcite", "R4", "poor", "raw"),
    ("Unobtainium", "R5", "fair", "processed"),
]
BANDS = {"Quartz": (464.0, 206.0), "Calcite": (1086.0, 282.0), "Unobtainium": (700.0, 900.0)}


def _rruff_text(mineral: str, raw: bool, seed: int) -> str:
    x = np.arange(150.0, 1400.0, 0.8)
    rng = np.random.default_rng(seed)
    y = sum(np.exp(-0.5 * ((x - c) / 6.0) ** 2) for c in BANDS[mineral]) * 1000.0 + rng.normal(0, 5.0, x.size)
    if raw:
        y = y + 400.0 + 0.3 * (x - 150.0)  # a fluorescence slope the RAW pipeline must remove
    rows = "".join(f"{a:.4f}, {b:.4f}\r\n" for a, b in zip(x, y))
    return f"##NAMES={mineral}\r\n##RRUFFID=X\r\n{rows}##END=\r\n"


def _name(i: int, mineral: str, specimen: str, kind: str) -> str:
    return f"{mineral}__{specimen}__Raman__532__0__unoriented__Raman_Data_{'RAW' if kind == 'raw' else 'Processed'}__{i}.txt"


@pytest.fixture
def field_archive(tmp_path: Path) -> Path:
    """The hand-made set as the shared one is laid out: a folder with manifest.csv, packed as .tar.xz,
    plus one manifest line whose file is not a spectrum (it must be counted, not dropped silently)."""
    root = tmp_path / "set" / "rruff_fair_poor_d2"
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(["file", "quality", "kind", "mineral", "rruff_id", "specimen", "laser_nm"])
    for i, (mineral, specimen, quality, kind) in enumerate(FILES):
        name = f"{quality}/{_name(i, mineral, specimen, kind)}"
        (root / quality).mkdir(parents=True, exist_ok=True)
        (root / name).write_text(_rruff_text(mineral, kind == "raw", i))
        writer.writerow([name, quality, kind, mineral, specimen, specimen, 532])
    (root / "fair" / "broken.txt").write_text("not a spectrum\n")
    writer.writerow(["fair/broken.txt", "fair", "processed", "Quartz", "R1", "R1", 532])
    (root / "manifest.csv").write_text(manifest.getvalue())
    archive = tmp_path / "fair_poor.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(root, arcname="rruff_fair_poor_d2")
    return archive


def test_every_file_is_read_with_the_device_path_and_a_broken_one_is_counted(field_archive: Path) -> None:
    field = load_field_set(field_archive)
    assert len(field) == len(FILES)
    assert len(field.skipped) == 1 and "broken.txt" in field.skipped[0]
    assert field.X.shape == (len(FILES), GRID_SIZE)
    raw_quartz = field.X[list(field.file).index(next(f for f in field.file if "Quartz" in f and "RAW" in f))]
    processed_quartz = field.X[0]
    # the RAW file went through RAW_PIPELINE: its baseline is gone, so it correlates with its processed twin
    measured = (raw_quartz > 0) & (processed_quartz > 0)
    assert np.corrcoef(raw_quartz[measured], processed_quartz[measured])[0, 1] > 0.9


def test_scored_files_are_exactly_those_of_the_test_part_specimens_with_known_minerals(field_archive: Path) -> None:
    """A hand-made split: R1 (Quartz) and R4 (Calcite) in test, R2 and R3 in training; Unobtainium unknown to the model."""
    field = load_field_set(field_archive)
    classes = ["Calcite", "Quartz"]
    test_rows = field.rows_of({"R1", "R4", "R5"}, classes)
    assert sorted(field.specimen[test_rows]) == ["R1", "R1", "R4"]  # R5's mineral is no class: not scored
    train_rows = field.training_rows({"R2", "R3"}, classes)
    assert sorted(field.specimen[train_rows]) == ["R2", "R3"] and set(field.kind[train_rows]) == {"processed"}
    assert not set(field.specimen[train_rows]) & set(field.specimen[test_rows])


def test_grouped_fair_scores_each_quality_and_kind_of_the_part(field_archive: Path) -> None:
    field = load_field_set(field_archive)
    classes = ["Calcite", "Quartz"]
    references = np.stack([field.X[list(field.specimen).index(s)] for s in ("R2", "R3")])  # one training spectrum each
    library = ReferenceLibrary(references, np.array(["Quartz", "Calcite"]), np.array(["R2", "R3"]), np.array(["bundle"] * 2))
    matcher = Matcher(classes, library, Calibration(library_weight=5.0))

    def always_calcite(X: np.ndarray) -> np.ndarray:
        return np.tile([0.9, 0.1], (len(X), 1))

    figures = grouped_fair(field, {"test": np.array(["R1", "R4"])}, matcher, always_calcite)["test"]
    assert {group: cell["spectra"] for group, cell in figures.items()} == {
        "fair_processed": 1, "fair_raw": 1, "poor_processed": 0, "poor_raw": 1,
    }
    assert figures["fair_processed"]["model_top1"] == 0.0  # a Quartz file, the model says Calcite
    assert figures["fair_processed"]["library_top1"] == 1.0  # its band matches the Quartz reference
    assert figures["poor_raw"]["model_top1"] == 1.0  # the Calcite file
    flat = flat_test_figures({"grouped_fair": {"test": figures}})
    assert flat is not None and flat["fair_raw_spectra"] == 1.0 and "poor_processed_model_top1" not in flat


def test_split_all_puts_every_spectrum_in_training() -> None:
    mineral = np.array(["A", "A", "B", "B", "B"])
    split = make_split("all", mineral, np.array(["s1", "s2", "s3", "s4", "s5"]), seed=0)
    assert split.train.tolist() == [0, 1, 2, 3, 4] and not len(split.val) and not len(split.test)


def test_split_all_refuses_early_stopping_and_bad_recipes_are_refused_when_built() -> None:
    with pytest.raises(ConfigError, match="patience"):
        FitConfig(protocol="all", epochs=30, patience=10)
    FitConfig(protocol="all", epochs=30, patience=30)
    # an ensemble member's init seed equal to its split's seed would train the same run again
    with pytest.raises(ConfigError, match="init-seed 1 is the split's --seed"):
        FitConfig(seed=1, init_seed=1)
    assert FitConfig(seed=1, init_seed=11).training_seed == 11 and FitConfig(seed=1).training_seed == 1


def test_a_run_keeps_its_last_epoch_without_validation_or_with_no_early_stopping() -> None:
    from trainer.training import early_stopper

    stopper = early_stopper(FitConfig(protocol="grouped", patience=5), "val_accuracy", has_validation=True)
    assert stopper is not None and stopper.restore_best_weights and stopper.patience == 5
    assert early_stopper(FitConfig(protocol="grouped", early_stopping=False), "val_accuracy", has_validation=True) is None
    assert early_stopper(FitConfig(protocol="all", epochs=8, patience=8), "val_accuracy", has_validation=False) is None
    with pytest.raises(ConfigError, match="augmentation"):
        FitConfig(augment="phsyical")  # the typo `trainer repeat` used to run N x P times
    with pytest.raises(ConfigError, match="augmentation"):
        FitConfig(augment="physical,noise_snr_min=ten")
    with pytest.raises(ConfigError, match="split protocol"):
        FitConfig(protocol="grouepd")
    with pytest.raises(ConfigError, match="no such file"):
        FitConfig(extra_train="/nonexistent/fair.tar.xz")


def test_extra_training_spectra_come_only_from_training_specimens(field_archive: Path) -> None:
    from trainer.dataset import SpectraDataset
    from trainer.training import extra_training_rows

    n = 4
    dataset = SpectraDataset(
        X=np.zeros((n, GRID.size), np.float32),
        mineral=np.array(["Quartz", "Quartz", "Calcite", "Calcite"]),
        rruff_id=np.array(["R1", "R2", "R3", "R4"]),
        specimen=np.array(["R1", "R2", "R3", "R4"]),
        laser_nm=np.full(n, 532.0),
        source=np.array(["a", "b", "c", "d"]),
    )
    split = make_split("grouped", dataset.mineral, dataset.specimen, seed=0)
    config = FitConfig(protocol="grouped", extra_train=str(field_archive))
    extra = extra_training_rows(config, dataset, split, ["Calcite", "Quartz"])
    assert extra is not None
    X, y, specimens = extra
    trained = set(dataset.specimen[split.train])
    expected = [i for i, (m, s, _, k) in enumerate(FILES) if s in trained and k == "processed" and m != "Unobtainium"]
    assert len(y) == len(expected) and set(specimens) <= trained
    assert sorted(y.tolist()) == sorted(["Calcite", "Quartz"].index(FILES[i][0]) for i in expected)
    # --extra-kinds processed,raw: the RAW files of the same specimens join too, and still none of another's
    both = extra_training_rows(replace(config, extra_kinds="processed,raw"), dataset, split, ["Calcite", "Quartz"])
    assert both is not None
    expected_both = [i for i, (m, s, _, k) in enumerate(FILES) if s in trained and m != "Unobtainium"]
    assert len(both[1]) == len(expected_both) and set(both[2]) <= trained
    # --extra-repeat 3: each of those files three times, nothing else
    thrice = extra_training_rows(replace(config, extra_kinds="processed,raw", extra_repeat=3), dataset, split, ["Calcite", "Quartz"])
    assert thrice is not None and len(thrice[1]) == 3 * len(expected_both)
    assert sorted(thrice[1].tolist()) == sorted(3 * both[1].tolist()) and set(thrice[2]) <= trained
    with pytest.raises(ConfigError, match="extra-repeat"):
        FitConfig(extra_repeat=2)  # nothing to repeat without --extra-train


def test_the_fusion_is_fitted_on_validation_spectra_and_their_specimens_fair_poor_files(field_archive: Path) -> None:
    from trainer.field_set import validation_with_field

    field = load_field_set(field_archive)
    X, y = np.zeros((2, GRID_SIZE), np.float32), np.array([0, 1])
    X_all, y_all, joined = validation_with_field(X, y, field, np.array(["R2", "R3"]), ["Calcite", "Quartz"])
    assert joined == 2 and len(X_all) == len(y_all) == 4  # R2 (poor processed Quartz) and R3 (fair processed Calcite)
    assert sorted(y_all[2:].tolist()) == [0, 1]
    assert validation_with_field(X, y, None, np.array(["R2"]), ["Quartz"])[2] == 0


def test_a_library_with_fair_poor_files_holds_only_its_training_specimens_processed_files(field_archive: Path) -> None:
    from trainer.dataset import SpectraDataset
    from trainer.export import reference_library

    field = load_field_set(field_archive)
    dataset = SpectraDataset(
        X=np.zeros((4, GRID.size), np.float32),
        mineral=np.array(["Quartz", "Quartz", "Calcite", "Calcite"]),
        rruff_id=np.array(["R1", "R2", "R3", "R4"]),
        specimen=np.array(["R1", "R2", "R3", "R4"]),
        laser_nm=np.full(4, 532.0),
        source=np.array(["a", "b", "c", "d"]),
    )
    train = np.array([0, 3])  # specimens R1 (Quartz) and R4 (Calcite): R2 and R3 are held out
    library = reference_library(dataset, train, field)
    # R1's processed file joins; R1's RAW twin, R4's RAW-only file and the held-out specimens' files do not
    assert len(library) == 3 and sorted(library.ids.tolist()) == ["R1", "R1", "R4"]
    joined = library.spectra[np.flatnonzero(library.ids == "R1")]
    assert np.count_nonzero(np.abs(joined.astype(np.float32)).sum(axis=1)) == 1  # the dataset row is zeros, the file is not
    assert len(reference_library(dataset, train)) == 2  # without the set: the training spectra alone
