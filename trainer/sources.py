"""Turn spectrum sources into a dataset: RRUFF files, RRUFF zip archives, the paper's folder
layout, plain two-column files, and the published Dataset_2 ``.npz``.

Every spectrum goes through :func:`ramancore.preprocessing.preprocess`, the code the device runs.
A file that cannot be used is reported (one line: file and problem) and counted; with
``strict`` the first one stops the run instead. Nothing is dropped without a word.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.spectrum_files import Spectrum, SpectrumFileError, parse_spectrum_text, specimen_of
from ramancore.preprocessing import GRID, PreprocessingError, is_on_grid
from ramancore.raw_pipeline import RAW_PIPELINE
from trainer.dataset import SpectraDataset
from trainer.errors import TrainerError

SPECTRUM_SUFFIXES = {".txt", ".csv", ".tsv", ".dat"}
RAW_MODES = ("skip", "clean")


class SourceError(TrainerError):
    """A source that cannot be read at all (missing path, unknown kind, broken archive)."""


@dataclass
class PrepareReport:
    """What happened to every input file."""

    used: int = 0
    kept_as_published: int = 0  # already on the model grid, taken as they are
    skipped: list[str] = field(default_factory=list)  # one line each: "file: problem"


@dataclass
class _Row:
    x: np.ndarray
    mineral: str
    rruff_id: str
    laser_nm: float
    source: str
    on_grid: bool  # already a model input: taken as it is


def _spectrum_row(spectrum: Spectrum, raw: str) -> _Row:
    if not spectrum.mineral:
        raise SpectrumFileError(spectrum.source, "no mineral name (no ##NAMES= header, RRUFF file name or class folder)")
    if spectrum.kind == "raw" and raw == "skip":
        raise SpectrumFileError(spectrum.source, "RRUFF RAW file, not baseline-corrected (use --raw clean to clean it as the device does)")
    raw_counts = spectrum.kind == "raw"
    on_grid = not raw_counts and is_on_grid(spectrum.x, spectrum.y)
    try:
        _, x = RAW_PIPELINE.model_input(spectrum.x, spectrum.y, raw=raw_counts)
    except PreprocessingError as exc:
        raise SpectrumFileError(spectrum.source, str(exc)) from None
    return _Row(
        x=x,
        mineral=spectrum.mineral,
        rruff_id=spectrum.rruff_id or "",
        laser_nm=spectrum.laser_nm if spectrum.laser_nm is not None else float("nan"),
        source=Path(spectrum.source).name,
        on_grid=on_grid,
    )


def _iter_zip(path: Path) -> Iterator[tuple[bytes, str, str | None]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{path}: not a readable zip archive ({exc})") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir() or Path(info.filename).suffix.lower() not in SPECTRUM_SUFFIXES:
                continue
            yield archive.read(info), f"{path}:{info.filename}", None


def _iter_directory(path: Path) -> Iterator[tuple[bytes, str, str | None]]:
    """A folder of spectrum files, or the paper's layout: one sub-folder per class."""
    entries = sorted(path.iterdir())
    class_folders = bool(entries) and all(e.is_dir() for e in entries)
    files = (
        sorted(f for d in entries for f in d.iterdir() if f.is_file())
        if class_folders
        else [e for e in entries if e.is_file()]
    )
    for file in files:
        if file.suffix.lower() in SPECTRUM_SUFFIXES:
            yield file.read_bytes(), str(file), file.parent.name if class_folders else None


def _iter_files(paths: list[Path]) -> Iterator[tuple[bytes, str, str | None]]:
    for path in paths:
        if path.is_dir():
            yield from _iter_directory(path)
        elif path.suffix.lower() == ".zip":
            yield from _iter_zip(path)
        else:
            try:
                yield path.read_bytes(), str(path), None
            except OSError as exc:
                raise SourceError(f"{path}: {exc.strerror or exc}") from None


def load_published_npz(path: Path) -> SpectraDataset:
    """The paper's Dataset_2 as shipped in ``shared/data`` (already preprocessed)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            X = data["intensity"].astype(np.float32)
            grid = data["wavenumber"]
            mineral = data["mineral"].astype(str)
            filename = data["filename"].astype(str)
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(f"{path}: not the published Dataset_2 npz ({exc})") from None
    if not np.array_equal(grid.astype(np.float64), GRID):
        raise SourceError(f"{path}: its wavenumber grid is not the model grid 30..1599 cm^-1")
    rruff_id = np.array([name.split("__")[1] if "__" in name else "" for name in filename])
    laser = np.array([_laser_of(name) for name in filename], dtype=np.float64)
    return SpectraDataset(
        X=X,
        mineral=mineral,
        rruff_id=rruff_id,
        specimen=np.array([specimen_of(i) if i else "" for i in rruff_id]),
        laser_nm=laser,
        source=filename,
    )


def _laser_of(name: str) -> float:
    parts = name.split("__")
    try:
        return float(parts[3])
    except (IndexError, ValueError):
        return float("nan")


def collect(
    sources: Sequence[str | Path],
    strict: bool = False,
    on_skip: Callable[[str], None] | None = None,
    raw: str = "skip",
) -> tuple[SpectraDataset, PrepareReport]:
    """Read and preprocess every spectrum in ``sources`` into one dataset.

    ``on_skip`` is told each skipped file as it happens (the CLI prints them). RRUFF RAW files
    (detector baseline and fluorescence still in) are skipped and reported, or with
    ``raw="clean"`` cleaned by the device's own spike and baseline removal first.
    """
    if raw not in RAW_MODES:
        raise SourceError(f"--raw must be one of {', '.join(RAW_MODES)}, not {raw!r}")
    report = PrepareReport()
    parts: list[SpectraDataset] = []
    rows: list[_Row] = []
    files: list[Path] = []
    for source in map(Path, sources):
        if not source.exists():
            raise SourceError(f"{source}: no such file or folder")
        if source.suffix.lower() == ".npz":
            published = load_published_npz(source)
            parts.append(published)
            report.used += len(published)
            report.kept_as_published += len(published)
        else:
            files.append(source)

    for data, name, folder_class in _iter_files(files):
        try:
            spectrum = parse_spectrum_text(data, name, mineral=folder_class)
            row = _spectrum_row(spectrum, raw)
        except SpectrumFileError as exc:
            if strict:
                raise
            report.skipped.append(str(exc))
            if on_skip:
                on_skip(str(exc))
            continue
        report.kept_as_published += row.on_grid
        report.used += 1
        rows.append(row)

    if rows:
        ids = np.array([r.rruff_id for r in rows])
        parts.append(
            SpectraDataset(
                X=np.stack([r.x for r in rows]),
                mineral=np.array([r.mineral for r in rows]),
                rruff_id=ids,
                specimen=np.array([specimen_of(i) if i else "" for i in ids]),
                laser_nm=np.array([r.laser_nm for r in rows], dtype=np.float64),
                source=np.array([r.source for r in rows]),
            )
        )
    if not parts:
        raise SourceError("no usable spectra in " + ", ".join(map(str, sources)))
    return _concatenate(parts), report


def _concatenate(parts: list[SpectraDataset]) -> SpectraDataset:
    if len(parts) == 1:
        return parts[0]
    X, mineral, rruff_id, specimen, laser_nm, source = (
        np.concatenate([getattr(p, name) for p in parts]) for name in ("X", "mineral", "rruff_id", "specimen", "laser_nm", "source")
    )
    return SpectraDataset(X, mineral, rruff_id, specimen, laser_nm, source)
