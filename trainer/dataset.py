"""The project's dataset file: preprocessed spectra with labels, specimens, lasers and provenance.

One ``.npz`` (no pickles) holding the model inputs and, per spectrum, its mineral, RRUFF id,
specimen, laser wavelength and source file name, plus a JSON ``meta`` record with the format
version, the grid and a content hash. The hash covers the inputs, labels and sources, so a run
can tell whether it is evaluated on the data it was trained on.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ramancore.preprocessing import GRID, GRID_SIZE
from trainer.errors import TrainerError

FORMAT = "ramanedge-dataset"
FORMAT_VERSION = 1


class DatasetError(TrainerError):
    """A dataset file that cannot be used; the message is one line naming the file."""


@dataclass
class SpectraDataset:
    """Preprocessed spectra (rows of ``X``) and what is known of each."""

    X: np.ndarray  # (n, GRID_SIZE) float32
    mineral: np.ndarray  # (n,) str: the class
    rruff_id: np.ndarray  # (n,) str, "" if unknown
    specimen: np.ndarray  # (n,) str, "" if unknown
    laser_nm: np.ndarray  # (n,) float, nan if unknown
    source: np.ndarray  # (n,) str: file name or archive member
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.X)
        if self.X.ndim != 2 or self.X.shape[1] != GRID_SIZE:
            raise DatasetError(f"spectra must be (n, {GRID_SIZE}), got {self.X.shape}")
        for name in ("mineral", "rruff_id", "specimen", "laser_nm", "source"):
            if len(getattr(self, name)) != n:
                raise DatasetError(f"{name} has {len(getattr(self, name))} entries for {n} spectra")

    def __len__(self) -> int:
        return len(self.X)

    @property
    def classes(self) -> list[str]:
        """Sorted class names: the label order of every model trained on this dataset."""
        return sorted(set(self.mineral.tolist()))

    def labels(self, classes: list[str] | None = None) -> np.ndarray:
        """Integer label of each spectrum in ``classes`` order (default: this dataset's); -1 if not a class.

        A grouped split leaves out classes with a single specimen: their spectra get -1 and
        are in no part of the split.
        """
        index = {name: i for i, name in enumerate(classes or self.classes)}
        return np.array([index.get(m, -1) for m in self.mineral], dtype=np.int64)

    def subset(self, rows: np.ndarray) -> SpectraDataset:
        return SpectraDataset(
            X=self.X[rows],
            mineral=self.mineral[rows],
            rruff_id=self.rruff_id[rows],
            specimen=self.specimen[rows],
            laser_nm=self.laser_nm[rows],
            source=self.source[rows],
            meta=dict(self.meta),
        )

    def with_min_per_class(self, n: int) -> SpectraDataset:
        """Keep the classes that have at least ``n`` spectra (the paper's Dataset_1 is n=10)."""
        counts = Counter(self.mineral.tolist())
        keep = np.array([counts[m] >= n for m in self.mineral], dtype=bool)
        out = self.subset(np.flatnonzero(keep))
        out.meta["min_per_class"] = n
        return out

    def content_hash(self) -> str:
        """sha256 of the inputs, labels, ids and sources, in order."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.X, dtype=np.float32).tobytes())
        for name in ("mineral", "rruff_id", "specimen", "source"):
            h.update("\x1f".join(getattr(self, name).tolist()).encode("utf-8"))
            h.update(b"\x1e")
        h.update(np.ascontiguousarray(self.laser_nm, dtype=np.float64).tobytes())
        return h.hexdigest()

    def summary(self) -> str:
        return f"{len(self.classes)} classes, {len(self)} spectra, {len(set(self.specimen.tolist()) - {''})} specimens"

    def save(self, path: str | Path) -> str:
        """Write the dataset; returns its content hash (also stored in the file)."""
        digest = self.content_hash()
        meta = {
            **self.meta,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "grid_cm1": [float(GRID[0]), float(GRID[-1]), float(GRID[1] - GRID[0])],
            "n_spectra": len(self),
            "n_classes": len(self.classes),
            "content_sha256": digest,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:  # an open file keeps numpy from appending ".npz"
            np.savez_compressed(
                fh,
                X=self.X.astype(np.float32),
                mineral=self.mineral.astype(str),
                rruff_id=self.rruff_id.astype(str),
                specimen=self.specimen.astype(str),
                laser_nm=self.laser_nm.astype(np.float64),
                source=self.source.astype(str),
                meta=np.array(json.dumps(meta)),
            )
        self.meta = meta
        return digest

    @classmethod
    def load(cls, path: str | Path) -> SpectraDataset:
        """Read a dataset written by :meth:`save`, checking its format and content hash."""
        path = Path(path)
        if path.is_file() and not zipfile.is_zipfile(path):
            raise DatasetError(
                f"{path}: not a dataset file from `trainer prepare` (an .npz archive); "
                f"for spectrum files run `trainer prepare {path.name} --out dataset.npz` first"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT:
                    raise DatasetError(f"{path}: not a ramanedge dataset (format {meta.get('format')!r})")
                if meta.get("format_version") != FORMAT_VERSION:
                    raise DatasetError(f"{path}: dataset format version {meta.get('format_version')} is not {FORMAT_VERSION}")
                ds = cls(
                    X=data["X"],
                    mineral=data["mineral"],
                    rruff_id=data["rruff_id"],
                    specimen=data["specimen"],
                    laser_nm=data["laser_nm"],
                    source=data["source"],
                    meta=meta,
                )
        except DatasetError:
            raise
        except FileNotFoundError:
            raise DatasetError(f"{path}: no such dataset file") from None
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"{path}: not a readable dataset file ({exc})") from None
        if ds.content_hash() != meta.get("content_sha256"):
            raise DatasetError(f"{path}: content hash does not match its record (file altered or damaged)")
        return ds
