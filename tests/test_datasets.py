from __future__ import annotations

import shutil
import zipfile
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.spectrum_files import read_spectrum_file
from ramancore.preprocessing import GRID, preprocess
from tests.conftest import two_column
from trainer.cli import app
from trainer.dataset import DatasetError, SpectraDataset
from trainer.sources import SourceError, collect, load_published_npz

runner = CliRunner()


@pytest.mark.parametrize(("min_per_class", "classes", "spectra"), [(10, 192, 5292), (2, 1332, 8578)])
def test_published_npz_gives_the_papers_datasets(dataset2_npz, tmp_path, min_per_class, classes, spectra):
    out = tmp_path / "d.npz"
    result = runner.invoke(app, ["prepare", str(dataset2_npz), "--min-per-class", str(min_per_class), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ds = SpectraDataset.load(out)
    assert (len(ds.classes), len(ds)) == (classes, spectra)
    assert min(Counter(ds.mineral.tolist()).values()) >= min_per_class
    assert ds.meta["content_sha256"] == ds.content_hash()
    assert ds.specimen[list(ds.rruff_id).index("R040063-4")] == "R040063"


def test_dataset_file_round_trip_and_tamper_check(dataset2_npz, tmp_path):
    ds = load_published_npz(dataset2_npz).with_min_per_class(10)
    path = tmp_path / "d1.npz"
    digest = ds.save(path)
    back = SpectraDataset.load(path)
    assert back.content_hash() == digest
    np.testing.assert_array_equal(back.X, ds.X)
    assert back.meta["min_per_class"] == 10 and back.meta["n_classes"] == 192
    assert np.isnan(back.laser_nm).sum() == 0 and set(back.laser_nm) >= {514.0, 532.0, 785.0}

    with np.load(path) as data:
        arrays = dict(data)
    arrays["mineral"] = arrays["mineral"].copy()
    arrays["mineral"][0] = "Quartz"
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match="content hash does not match"):
        SpectraDataset.load(tmp_path / "bad.npz")


def test_paper_layout_zip_and_plain_files_together(rruff_sample, tmp_path):
    processed = sorted(rruff_sample.glob("*Raman_Data_Processed*.txt"))[:6]
    # the paper's layout: one folder per class, two-column files already on the grid
    layout = tmp_path / "Dataset_1"
    for mineral in ("Alpha", "Beta"):
        (layout / mineral).mkdir(parents=True)
        for i in range(2):
            v = preprocess(np.linspace(100, 1200, 400), np.random.default_rng(i).random(400))
            (layout / mineral / f"{mineral}__R0{i}__Raman__532__0__x__Raman_Data_Processed__{i}.txt").write_text(
                two_column(GRID.astype(int), v)
            )
    archive = tmp_path / "excellent_unoriented.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in processed[:3]:
            zf.writestr(f"excellent_unoriented/{p.name}", p.read_bytes())
    loose = tmp_path / "loose"
    loose.mkdir()
    for p in processed[3:]:
        shutil.copy(p, loose)

    ds, report = collect([layout, archive, loose])
    assert report.used == len(ds) == 10 and report.kept_as_published == 4 and not report.skipped
    assert Counter(ds.mineral.tolist())["Alpha"] == 2
    first = read_spectrum_file(processed[0])
    row = list(ds.source).index(processed[0].name)
    np.testing.assert_array_equal(ds.X[row], preprocess(first.x, first.y))
    assert ds.mineral[row] == first.mineral and ds.laser_nm[row] == first.laser_nm


def test_prepare_skips_and_counts_bad_files_or_stops_with_strict(rruff_sample, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted(rruff_sample.glob("*Raman_Data_Processed*.txt"))[:3]
    for p in good:
        shutil.copy(p, folder)
    (folder / "empty.txt").write_text("")
    (folder / "junk.txt").write_bytes(bytes(range(256)))
    (folder / "Nameless.csv").write_text(two_column(np.arange(100, 200, 5), np.arange(20)))
    out = tmp_path / "d.npz"

    result = runner.invoke(app, ["prepare", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 used" in result.output and "3 skipped" in result.output
    assert f"skipped {folder / 'empty.txt'}: empty file" in result.output
    assert f"skipped {folder / 'junk.txt'}: binary data" in result.output
    assert "Nameless.csv: no mineral name" in result.output
    assert len(SpectraDataset.load(out)) == 3

    strict = runner.invoke(app, ["prepare", str(folder), "--out", str(tmp_path / "s.npz"), "--strict"])
    assert strict.exit_code == 1
    assert strict.output.strip().startswith("error:") and "Traceback" not in strict.output
    assert not (tmp_path / "s.npz").exists()


def test_unreadable_sources_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "d.npz")])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {tmp_path / 'missing'}: no such file or folder"
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(SourceError, match="broken.zip: not a readable zip archive"):
        collect([tmp_path / "broken.zip"])
    (tmp_path / "other.npz").write_bytes(b"not an npz")
    with pytest.raises(SourceError, match="other.npz: not the published Dataset_2 npz"):
        collect([tmp_path / "other.npz"])
    with pytest.raises(DatasetError, match="no such dataset file"):
        SpectraDataset.load(tmp_path / "none.npz")


def test_rruff_raw_files_are_reported_or_cleaned(rruff_sample, tmp_path):
    result = runner.invoke(app, ["prepare", str(rruff_sample), "--out", str(tmp_path / "p.npz")])
    assert result.exit_code == 0 and "150 used" in result.output and "150 skipped" in result.output
    assert "Raman_Data_RAW__28065.txt: RRUFF RAW file, not baseline-corrected" in result.output
    result = runner.invoke(app, ["prepare", str(rruff_sample), "--raw", "clean", "--out", str(tmp_path / "c.npz")])
    assert result.exit_code == 0 and "300 used" in result.output
    ds = SpectraDataset.load(tmp_path / "c.npz")
    rows = {(s.split("__Raman_Data_")[0], "RAW" in s): i for i, s in enumerate(ds.source)}
    unit = ds.X / np.linalg.norm(ds.X, axis=1, keepdims=True)
    cosines = [unit[i] @ unit[rows[(stem, False)]] for (stem, is_raw), i in rows.items() if is_raw]
    assert len(cosines) == 150
    assert np.median(cosines) > 0.98  # cleaned on the device's path, RAW spectra look like RRUFF's own processing
