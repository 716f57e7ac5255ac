"""Model bundles: a TFLite model, its label list, a reference library and a manifest the edge can trust.

A bundle is a folder::

    manifest.json    format version, grid, preprocessing, quantisation, metrics, sha256 of each file
    model.tflite     the classifier (int8, float16 or float32)
    labels.json      class names in model-output order
    reference.npz    one median preprocessed spectrum per class (float16), for best-match plots and the emulator

Loading checks the format version, every file's sha256 and the label count; each failure is
one line naming the bundle and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

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
class Bundle:
    path: Path
    manifest: dict
    labels: list[str]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def model_id(self) -> str:
        """Short, stable name of the model for logs: precision and the first 12 hex digits of its sha256."""
        return f"{self.manifest['precision']}-{self.manifest['files'][MODEL][:12]}"

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
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable {MANIFEST} ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: {MANIFEST} is not a JSON object (got {type(manifest).__name__})")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: not a ramanedge model bundle (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {manifest.get('format_version')} is not supported "
            f"(this ramanedge reads version {FORMAT_VERSION})"
        )
    for name, digest in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing")
        if sha256_of(file) != digest:
            raise BundleError(f"{path}: {name} does not match its sha256 in the manifest (damaged or altered)")
    if MODEL not in manifest.get("files", {}):
        raise BundleError(f"{path}: the manifest lists no {MODEL}")
    try:
        labels = json.loads((path / LABELS).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable {LABELS} ({exc})") from None
    if len(labels) != manifest.get("n_classes"):
        raise BundleError(f"{path}: {len(labels)} labels but the manifest says {manifest.get('n_classes')} classes")
    bundle = Bundle(path=path, manifest=manifest, labels=labels)
    if REFERENCE in manifest["files"]:
        bundle.reference()  # a damaged library is refused now, not in the middle of a live session
    grid = manifest.get("grid_cm1", {})
    if (grid.get("start"), grid.get("stop"), grid.get("size")) != (GRID[0], GRID[-1], GRID.size):
        raise BundleError(f"{path}: model grid {grid} is not this ramanedge's {GRID[0]:.0f}..{GRID[-1]:.0f} cm^-1")
    return bundle
