"""Model bundles: a TFLite model, its label list, a reference library and a manifest the edge can trust.

A bundle is a folder::

    manifest.json    format version, grid, preprocessing, quantisation, metrics, sha256 of each file
    model.tflite     the classifier (int8, float16 or float32)
    labels.json      class names in model-output order
    reference.npz    one median preprocessed spectrum per class (float16), for best-match plots and the emulator

The format is read and written here only: :class:`Manifest` is its typed record,
:func:`write_bundle` the writer (``trainer export`` calls it), :func:`load_bundle` the reader.
Loading checks the format version (an unknown one is refused), every file's sha256, the label
count and the grid; each failure is one line naming the bundle and what is wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.preprocessing import GRID

FORMAT = "ramanedge-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL = "model.tflite"
LABELS = "labels.json"
REFERENCE = "reference.npz"

#: The model that ships inside the package.
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "default"


class BundleError(ValueError):
    """A bundle that must not be used; the message is one line naming it."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` holds. Required fields first; ``metrics`` may be filled in after scoring."""

    precision: str  #: int8, float16 or float32
    n_classes: int
    grid_cm1: dict[str, float]  #: start, stop, step, size
    preprocessing: str
    input: dict[str, Any]  #: dtype, shape, scale, zero_point
    output: dict[str, Any]
    training: dict[str, Any]  #: run, dataset, protocol, arch, recipe, device, ...
    files: dict[str, str]  #: file name -> sha256
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)  #: test top-k per precision, as the device ranks
    metrics_other_protocol: dict[str, Any] | None = None  #: the same recipe on the other split protocol
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: object, where: Path) -> Manifest:
        """A manifest read from JSON, refused in one line if it is not one this ramanedge reads."""
        if not isinstance(data, dict):
            raise BundleError(f"{where}: {MANIFEST} is not a JSON object (got {type(data).__name__})")
        if data.get("format") != FORMAT:
            raise BundleError(f"{where}: not a ramanedge model bundle (format {data.get('format')!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"{where}: bundle format version {data.get('format_version')} is not supported "
                f"(this ramanedge reads version {FORMAT_VERSION})"
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            manifest = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise BundleError(f"{where}: {MANIFEST} lacks a field ({exc})") from None
        if not isinstance(manifest.files, dict) or not isinstance(manifest.n_classes, int):
            raise BundleError(f"{where}: {MANIFEST} has malformed files or n_classes")
        return manifest

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    labels: list[str]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def model_id(self) -> str:
        """Short, stable name of the model for logs: precision and the first 12 hex digits of its sha256."""
        return f"{self.manifest.precision}-{self.manifest.files[MODEL][:12]}"

    def reference(self) -> tuple[list[str], np.ndarray]:
        """Minerals and their median spectra (float32, on the model grid)."""
        try:
            with np.load(self.path / REFERENCE, allow_pickle=False) as data:
                return data["minerals"].tolist(), data["spectra"].astype(np.float32)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{self.path}: unreadable {REFERENCE} ({exc})") from None


def load_bundle(path: str | Path | None = None) -> Bundle:
    """Open and verify a bundle folder (default: the one shipped with the package)."""
    path = Path(path) if path else DEFAULT_BUNDLE
    if path == DEFAULT_BUNDLE and not path.is_dir():
        raise BundleError(f"{path}: this installation has no bundled model; pass --model BUNDLE")
    if not path.is_dir():
        raise BundleError(f"{path}: no such model bundle folder")
    try:
        manifest = Manifest.from_dict(json.loads((path / MANIFEST).read_text()), path)
    except FileNotFoundError:
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable {MANIFEST} ({exc})") from None
    for name, digest in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing")
        if sha256_of(file) != digest:
            raise BundleError(f"{path}: {name} does not match its sha256 in the manifest (damaged or altered)")
    if MODEL not in manifest.files:
        raise BundleError(f"{path}: the manifest lists no {MODEL}")
    try:
        labels = json.loads((path / LABELS).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable {LABELS} ({exc})") from None
    if len(labels) != manifest.n_classes:
        raise BundleError(f"{path}: {len(labels)} labels but the manifest says {manifest.n_classes} classes")
    bundle = Bundle(path=path, manifest=manifest, labels=labels)
    if REFERENCE in manifest.files:
        bundle.reference()  # a damaged library is refused now, not in the middle of a live session
    grid = manifest.grid_cm1 if isinstance(manifest.grid_cm1, dict) else {}
    if (grid.get("start"), grid.get("stop"), grid.get("size")) != (GRID[0], GRID[-1], GRID.size):
        raise BundleError(f"{path}: model grid {grid} is not this ramanedge's {GRID[0]:.0f}..{GRID[-1]:.0f} cm^-1")
    return bundle


def write_bundle(
    out: Path,
    model_bytes: bytes,
    labels: list[str],
    reference_spectra: np.ndarray,
    manifest: Manifest,
) -> Bundle:
    """Write a bundle folder: model, labels, reference library (one spectrum per label, float16) and manifest.

    The manifest's ``files`` and ``created`` are filled in here; the manifest is written last,
    through a temporary file and a rename, so a bundle is never left with a manifest that
    vouches for files that are not (yet) there. Returns the bundle as :func:`load_bundle` reads it.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL).write_bytes(model_bytes)
    (out / LABELS).write_text(json.dumps(labels, indent=0))
    with (out / REFERENCE).open("wb") as fh:
        np.savez_compressed(fh, minerals=np.array(labels), spectra=np.asarray(reference_spectra, dtype=np.float16))
    manifest = replace(
        manifest,
        files={name: sha256_of(out / name) for name in (MODEL, LABELS, REFERENCE)},
        created=manifest.created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    _write_manifest(out, manifest)
    return load_bundle(out)


def with_metrics(bundle: Bundle, metrics: dict[str, Any], other_protocol: dict[str, Any] | None = None) -> Bundle:
    """The bundle with its scores written into the manifest (the files it vouches for are unchanged)."""
    manifest = replace(bundle.manifest, metrics=metrics, metrics_other_protocol=other_protocol)
    _write_manifest(bundle.path, manifest)
    return load_bundle(bundle.path)


def _write_manifest(out: Path, manifest: Manifest) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.as_dict(), indent=2))
    os.replace(tmp, out / MANIFEST)
