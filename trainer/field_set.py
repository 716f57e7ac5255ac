"""The grouped-fair yardstick: real fair/poor RRUFF spectra of specimens a grouped run never saw.

Data flow: ``rruff_fair_poor_d2.tar.xz`` (RRUFF text files and ``manifest.csv``: mineral,
specimen, quality fair/poor, kind processed/raw, laser) -> :func:`load_field_set` reads every
file with the device's reader (:func:`edge.spectrum_files.parse_spectrum_text`) and makes the
model input with the device's path (:data:`ramancore.raw_pipeline.RAW_PIPELINE`: processed files
preprocessed, RAW files cleaned of spikes and baseline first) -> a :class:`FieldSet`.
:meth:`FieldSet.rows_of` picks the files whose specimen lies in one part of a split (the test
part for the figure, the validation part for choosing recipes) and whose mineral the model
knows; :func:`score_parts` scores them per (quality, kind) with any scorer, so ``trainer
evaluate`` (Keras float) and ``trainer export`` (the bundle through the edge interpreter) report
the same table. The same files may instead join training (:meth:`FieldSet.training_rows`),
for the specimens a run trains on only.

Their specimens are Dataset_2 specimens, so a *random*-split model has seen them: only grouped
runs get this figure.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.library import Calibration, Matcher, ReferenceLibrary
from edge.spectrum_files import SpectrumFileError, parse_spectrum_text
from ramancore.preprocessing import GRID_SIZE, PreprocessingError
from ramancore.raw_pipeline import RAW_PIPELINE
from trainer import calibration
from trainer.errors import TrainerError

if TYPE_CHECKING:  # typing only: importing them would pull Keras into every reader of the field set
    from trainer.dataset import SpectraDataset
    from trainer.training import Run

#: The shared set's file name (``../shared/data`` or ``$RAMANEDGE_DATA``).
FIELD_SET_FILE = "rruff_fair_poor_d2.tar.xz"
QUALITIES = ("fair", "poor")
KINDS = ("processed", "raw")
#: The metrics key of a run's grouped-fair figures.
GROUPED_FAIR = "grouped_fair"


class FieldSetError(TrainerError):
    """The fair/poor set cannot be read; one line naming the file."""


@dataclass(frozen=True)
class FieldSet:
    """Model inputs of the fair/poor files and what the manifest says of each.

    ``X``: (n, GRID_SIZE) float32, the device's model input; ``mineral``, ``specimen``,
    ``quality`` (fair/poor), ``kind`` (processed/raw), ``file``: (n,) str; ``skipped``: one line per
    file the device's reader refused (counted, never silently dropped); ``rruff_id``, ``laser_nm``: what the
    manifest says, where it says it (a library entry's id and laser).
    """

    X: np.ndarray
    mineral: np.ndarray
    specimen: np.ndarray
    quality: np.ndarray
    kind: np.ndarray
    file: np.ndarray
    rruff_id: np.ndarray  #: (n,) RRUFF id ("" where the manifest has none)
    laser_nm: np.ndarray  #: (n,) laser wavelength, nm (nan where unknown)
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.X)

    def rows_of(self, specimens: set[str] | np.ndarray, classes: list[str]) -> np.ndarray:
        """Rows whose specimen is in ``specimens`` (one part of a split) and whose mineral is a model class."""
        wanted = np.isin(self.specimen, np.asarray(sorted(set(specimens)), dtype=str))
        return np.flatnonzero(wanted & np.isin(self.mineral, np.asarray(classes, dtype=str)))

    def training_rows(self, specimens: set[str] | np.ndarray, classes: list[str], kinds: tuple[str, ...] = ("processed",)) -> np.ndarray:
        """Rows that may join a run's training data: specimens it trains on, minerals it knows, ``kinds`` files."""
        rows = self.rows_of(specimens, classes)
        return rows[np.isin(self.kind[rows], kinds)]


def default_path() -> Path | None:
    """The shared set where the project's data lives (``$RAMANEDGE_DATA``, else ``../shared/data``), if there."""
    for folder in (os.environ.get("RAMANEDGE_DATA"), "../shared/data"):
        if folder and (Path(folder) / FIELD_SET_FILE).is_file():
            return Path(folder) / FIELD_SET_FILE
    return None


def default_field_set() -> FieldSet:
    """The fair/poor set where :func:`default_path` finds it; a FieldSetError saying where it was looked for if not."""
    path = default_path()
    if path is None:
        raise FieldSetError(f"no {FIELD_SET_FILE} in $RAMANEDGE_DATA or ../shared/data")
    return load_field_set(path)


def load_field_set(path: str | Path) -> FieldSet:
    """Read the tar archive (or its unpacked folder) of fair/poor files and its ``manifest.csv``.

    Read once per process and file version (about 8 s: 1000 files, half through the raw path): an export
    scores its grouped twin and itself on it, a repeat evaluates every run on it. Nobody modifies a FieldSet.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise FieldSetError(f"{path}: not a readable fair/poor set ({exc})") from None
    return _load_field_set(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _load_field_set(resolved: str, mtime_ns: int, size: int) -> FieldSet:
    """:func:`load_field_set` of one version of the file (the modification time and size are the cache's key)."""
    path = Path(resolved)
    try:
        members = _read_members(path)
    except (OSError, tarfile.TarError) as exc:
        raise FieldSetError(f"{path}: not a readable fair/poor set ({exc})") from None
    manifest_name = next((name for name in members if name.rsplit("/", 1)[-1] == "manifest.csv"), None)
    if manifest_name is None:
        raise FieldSetError(f"{path}: no manifest.csv inside")
    root = manifest_name[: -len("manifest.csv")]
    rows: list[dict[str, str]] = list(csv.DictReader(io.StringIO(members[manifest_name].decode("utf-8"))))
    missing = {"file", "quality", "kind", "mineral", "specimen"} - set(rows[0] if rows else {})
    if missing:
        raise FieldSetError(f"{path}: manifest.csv lacks the columns {', '.join(sorted(missing))}")
    X, keep, skipped = [], [], []
    for row in rows:
        name = root + row["file"]
        try:
            if name not in members:
                raise SpectrumFileError(row["file"], "listed in manifest.csv but not in the archive")
            spectrum = parse_spectrum_text(members[name], row["file"])
            try:
                _, x = RAW_PIPELINE.model_input(spectrum.x, spectrum.y, raw=row["kind"] == "raw")
            except PreprocessingError as exc:
                raise SpectrumFileError(row["file"], str(exc)) from None
        except SpectrumFileError as exc:
            skipped.append(str(exc))
            continue
        X.append(x)
        keep.append(row)
    column = lambda key: np.array([r[key] for r in keep], dtype=str)  # noqa: E731
    return FieldSet(
        X=np.stack(X).astype(np.float32) if X else np.zeros((0, GRID_SIZE), np.float32),
        mineral=column("mineral"),
        specimen=column("specimen"),
        quality=column("quality"),
        kind=column("kind"),
        file=column("file"),
        rruff_id=np.array([r.get("rruff_id") or "" for r in keep], dtype=str),
        laser_nm=np.array([_laser(r.get("laser_nm")) for r in keep], dtype=np.float64),
        skipped=tuple(skipped),
    )


def _laser(value: str | None) -> float:
    """A manifest's laser wavelength (nm), nan where it is empty or not a number."""
    try:
        return float(value) if value else float("nan")
    except ValueError:
        return float("nan")


def _read_members(path: Path) -> dict[str, bytes]:
    """Every regular file of the archive or folder, by its path inside it."""
    if path.is_dir():
        return {str(f.relative_to(path)).replace(os.sep, "/"): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}
    members: dict[str, bytes] = {}
    with tarfile.open(path) as archive:
        for info in archive:
            handle = archive.extractfile(info) if info.isfile() else None
            if handle is not None:
                members[info.name] = handle.read()
    return members


#: scorer(rows) -> a dict of figures for those rows of the field set (e.g. top-1/top-3 of model, library, fused)
Scorer = Callable[[np.ndarray], dict[str, Any]]


def score_parts(field: FieldSet, rows: np.ndarray, scorer: Scorer) -> dict[str, Any]:
    """``scorer``'s figures for ``rows``, split by quality and kind (``fair_processed``, ``poor_raw``, ...),
    each with its count; an empty group is reported with ``spectra: 0`` and no figures."""
    out: dict[str, Any] = {}
    for quality in QUALITIES:
        for kind in KINDS:
            chosen = rows[(field.quality[rows] == quality) & (field.kind[rows] == kind)]
            out[f"{quality}_{kind}"] = {"spectra": int(len(chosen)), **(scorer(chosen) if len(chosen) else {})}
    return out


def answer_figures(answers: dict[str, Any]) -> dict[str, Any]:
    """The grouped-fair table's cells from :func:`trainer.calibration.score_answers`' output: top-1/top-3 of
    model alone, library alone and fused, and how often *identified* fired and was right."""
    fused = answers["fused"]
    return {
        **{f"{source}_{k}": answers[source][k] for source in ("model", "library", "fused") for k in ("top1", "top3")},
        "fused_group_top1": fused["group_top1"],
        "identified_coverage": fused["identified"]["coverage"],
        "identified_precision": fused["identified"]["precision"],
    }


def grouped_fair(
    field: FieldSet,
    parts: dict[str, np.ndarray],
    matcher: Matcher,
    probabilities_of: Callable[[np.ndarray], np.ndarray],
) -> dict[str, Any]:
    """Grouped-fair figures of one run: for each named part of its split (``parts``: part name -> the
    dataset's specimen ids in it, e.g. ``{"test": ..., "validation": ...}``), the field-set files of
    those specimens scored by ``probabilities_of`` ((n, GRID_SIZE) -> (n, classes)) and ``matcher``
    (the run's classes, its training library and fusion), ranked as the device ranks."""
    classes = matcher.labels
    index = {m: i for i, m in enumerate(classes)}
    y = np.array([index.get(m, -1) for m in field.mineral], dtype=np.int64)

    def scorer(rows: np.ndarray) -> dict[str, Any]:
        X = field.X[rows]
        return answer_figures(calibration.score_answers(matcher, probabilities_of(X), X, y[rows]))

    out: dict[str, Any] = {part: score_parts(field, field.rows_of(specimens, classes), scorer) for part, specimens in parts.items()}
    out["unreadable_files"] = len(field.skipped)
    return out


def labelled_parts(field: FieldSet, X: np.ndarray, y: np.ndarray, specimens: np.ndarray, classes: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One part of a grouped run as (spectra, class indices) per kind: ``excellent`` (``X`` (n, GRID_SIZE), ``y``
    (n,): the part's dataset spectra) and ``fair_processed`` ... ``poor_raw`` (the fair/poor files of ``specimens``,
    its specimens, of minerals in ``classes``): what a benchmark scores a model on, kind by kind."""
    index = {m: i for i, m in enumerate(classes)}
    parts = {"excellent": (X, y)}
    rows = field.rows_of(specimens, classes)
    for quality in QUALITIES:
        for kind in KINDS:
            chosen = rows[(field.quality[rows] == quality) & (field.kind[rows] == kind)]
            parts[f"{quality}_{kind}"] = (field.X[chosen], np.array([index[m] for m in field.mineral[chosen]], dtype=np.int64))
    return parts


def flat_test_figures(record: dict[str, Any]) -> dict[str, float] | None:
    """A metrics record's grouped-fair test figures as one flat dict (``fair_processed_fused_top1``, ...,
    and ``fair_processed_spectra``), for summaries over splits; None where the run was not scored."""
    test = record.get(GROUPED_FAIR, {}).get("test")
    if not test:
        return None
    return {f"{group}_{name}": float(value) for group, cell in test.items() for name, value in cell.items()}


def validation_with_field(
    X: np.ndarray, y: np.ndarray, field: FieldSet | None, specimens: np.ndarray, classes: list[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """A grouped run's validation spectra ``X`` (n, GRID_SIZE), ``y`` (n,) with the fair/poor files of its
    validation specimens added (processed and RAW): what the fusion and the thresholds are fitted on, so that
    they hold on field-quality spectra too, not only on RRUFF's excellent ones (grouped-fair validation). Also
    returns how many files joined."""
    if field is None:
        return X, y, 0
    rows = field.rows_of(specimens, classes)
    index = {m: i for i, m in enumerate(classes)}
    return np.concatenate([X, field.X[rows]]), np.concatenate([y, [index[m] for m in field.mineral[rows]]]).astype(np.int64), len(rows)


def validation_weights(n: int, joined: int) -> np.ndarray:
    """(n,) how much each of :func:`validation_with_field`'s ``n`` spectra counts in a fit: its last ``joined`` (the
    fair/poor files) count as much, together, as the excellent spectra before them. A fit on excellent spectra
    alone leans on what matches clean spectra (the library: benchmarks/fusion_fit.py, three grouped splits)."""
    excellent = n - joined
    return np.concatenate([np.ones(excellent), np.full(joined, excellent / joined if joined else 1.0)])


def validation_fusion(
    run: Run, dataset: SpectraDataset, library: ReferenceLibrary, field: FieldSet | None, probabilities_of: Callable[[np.ndarray], np.ndarray]
) -> Calibration:
    """The fusion and thresholds of a run, fitted on its validation spectra and their specimens' fair/poor files
    (:func:`validation_with_field`; in the fusion's fit the files count as much as the excellent spectra), with
    ``probabilities_of`` ((n, GRID_SIZE) -> (n, classes): the Keras model or the exported bundle) and ``library``
    (its training spectra): what evaluate, openset and export all fit."""
    labels = dataset.labels(run.classes)
    X, y, joined = validation_with_field(dataset.X[run.split.val], labels[run.split.val], field, dataset.specimen[run.split.val], run.classes)
    weights = validation_weights(len(y), joined)
    source = (
        f"{run.path.name} validation ({run.split.protocol} split; {joined} fair/poor files of its validation specimens among them, "
        "weighted to count as much as the excellent spectra in the fusion's fit)"
    )
    return calibration.calibrate(Matcher(run.classes, library, Calibration()), probabilities_of(X), X, y, source, weights)
