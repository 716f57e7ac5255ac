"""Model bundles: a TFLite model, its label list, a reference library and a manifest the edge can trust.

A bundle is a folder::

    manifest.json    format version, grid, preprocessing (and the model input's smoothing, if any), quantisation,
                     calibration, metrics, sha256 of each file
    model.tflite     the classifier (int8, float16 or float32)
    model-N.tflite   further members of an ensemble (N = 1, 2, ...): the device averages their probabilities
    labels.json      class names in model-output order
    library.npz      the reference library: every training spectrum of the model's split (uint8, on
                     the grid), with mineral, RRUFF id and laser; searched beside the model (edge.library)
    demo.npz         held-out spectra (the run's test split) the demo's emulator plays
    embeddings.npz   optional: every library reference's embedding (the model's second output) and class, in the
                     library's order, for the embedding search fused into the model's probabilities (edge.embedding_search)
    embeddings-N.npz the same for ensemble member N (each member embeds differently, so each has its own search:
                     the device fuses each member's search into that member's probabilities, then averages)

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

from edge.embedding_search import EmbeddingSearch
from edge.library import Calibration, ReferenceLibrary
from ramancore.preprocessing import GRID

FORMAT = "ramanedge-bundle"
#: 2: library.npz (every training spectrum) and demo.npz replace reference.npz (class medians);
#: the manifest gains ``calibration`` and ``library``. 3: ``input_smoothing``, which a reader of version 2 would
#: ignore and so answer differently from the bundle's own figures. A bundle is written as version 3 only where it
#: smooths, so that older readers still read every bundle they would answer alike.
FORMAT_VERSION = 3
FORMAT_VERSION_UNSMOOTHED = 2
#: Versions this ramanedge reads.
READABLE_VERSIONS = (FORMAT_VERSION_UNSMOOTHED, FORMAT_VERSION)
MANIFEST = "manifest.json"
MODEL = "model.tflite"
LABELS = "labels.json"
LIBRARY = "library.npz"
DEMO = "demo.npz"
EMBEDDINGS = "embeddings.npz"
#: Library spectra (0..1) are stored as uint8 steps of this size.
LIBRARY_STEP = 1.0 / 255.0

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
    calibration: dict[str, Any] = field(default_factory=dict)  #: edge.library.Calibration as a dict
    library: dict[str, Any] = field(default_factory=dict)  #: what library.npz holds and where it came from
    #: the model files whose probabilities are averaged (an ensemble), model.tflite first
    members: list[str] = field(default_factory=lambda: [MODEL])
    #: Raman-indistinguishable groups of minerals (trainer.groups), answered together where the evidence cannot separate them
    groups: list[list[str]] = field(default_factory=list)
    #: the embedding search (edge.embedding_search): weight, references, dim, layer, fitted on; an ensemble's also
    #: ``weights``, one per member (``weight`` is the first's); empty: none
    embedding_search: dict[str, Any] = field(default_factory=dict)
    #: the model input's smoothing (ramancore.preprocessing.smooth_measured_span): window_cm1 (0 or absent: none),
    #: polyorder, what the window was fitted on and its validation scores
    input_smoothing: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: object, where: Path) -> Manifest:
        """A manifest read from JSON, refused in one line if it is not one this ramanedge reads."""
        if not isinstance(data, dict):
            raise BundleError(f"{where}: {MANIFEST} is not a JSON object (got {type(data).__name__})")
        if data.get("format") != FORMAT:
            raise BundleError(f"{where}: not a ramanedge model bundle (format {data.get('format')!r})")
        if data.get("format_version") not in READABLE_VERSIONS:
            raise BundleError(
                f"{where}: bundle format version {data.get('format_version')} is not supported "
                f"(this ramanedge reads versions {', '.join(map(str, READABLE_VERSIONS))})"
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            manifest = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise BundleError(f"{where}: {MANIFEST} lacks a field ({exc})") from None
        if not isinstance(manifest.files, dict) or not isinstance(manifest.n_classes, int):
            raise BundleError(f"{where}: {MANIFEST} has malformed files or n_classes")
        return manifest

    @property
    def smoothing_cm1(self) -> float:
        """The model input's smoothing window in cm^-1 (0: none)."""
        return float(self.input_smoothing.get("window_cm1", 0.0))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def summary_rows(self) -> list[tuple[str, str]]:
        """(what, value) rows of what the bundle is and what it scored, for ``ramanedge info``: the manifest's
        blocks read here, in the format's one home, not by the command that shows them."""
        training, library, cal = self.training, self.library, self.calibration
        rows = [
            ("classes", str(self.n_classes)),
            ("input", f"{self.input['dtype']} {self.input['shape']} scale {self.input['scale']:.3g} zero point {self.input['zero_point']}"),
            ("trained on", training.get("data") or f"{training.get('dataset')} ({training.get('protocol')} split)"),
            ("network", f"{training.get('arch', 'sang2021')}, width {training.get('width')}, augmentation {'yes' if training.get('augmentation') else 'none'}"
             + (f", ensemble of {len(self.members)}" if len(self.members) > 1 else "")),
            ("trained with", str(training.get("device"))),
        ]
        if training.get("epochs_kept"):  # the twin's figures speak for this model only if both kept alike
            twin = self.metrics_other_protocol or {}
            said = f"; its {twin.get('protocol')} twin: {twin['epochs_kept']}" if twin.get("epochs_kept") else ""
            rows.append(("epochs kept", str(training["epochs_kept"]) + said))
        if library:
            rows.append(("library", f"{library.get('spectra')} reference spectra of {library.get('minerals')} minerals: {library.get('holds', '')}"))
        if self.embedding_search:
            search = self.embedding_search
            weights = search_weights(search)
            each = f"each member's, weights {', '.join(f'{w:g}' for w in weights)}" if len(weights) > 1 else f"weight {weights[0]:g}"
            rows.append((
                "embedding search",
                f"{search.get('references')} references in its {search.get('layer')} layer ({search.get('dim')} values), {each}",
            ))
        if self.smoothing_cm1:
            rows.append(("input smoothing", f"Savitzky-Golay over {self.smoothing_cm1:g} cm^-1 (order {self.input_smoothing.get('polyorder')}), "
                         f"fitted on {self.input_smoothing.get('fitted_on', '?')}"))
        if self.groups:
            rows.append(("groups", f"{len(self.groups)} Raman-indistinguishable groups of {sum(map(len, self.groups))} minerals"))
        if cal:
            fitted = cal.get("fitted", {})
            gate = " and the open-set evidence gate" if cal.get("evidence_gate") else ""
            rows.append((
                "calibration",
                f"temperature {cal['temperature']:.3f}, library weight {cal['library_weight']:.2f}"
                + (f" x exp(-{cal['library_noise_decay']:.0f} x noise)" if cal.get("library_noise_decay") else "")
                + f"; identified from confidence "
                f"{cal['identified']:.3f}{gate}, not in library under HQI {cal['not_in_library_hqi']:.0f} (fitted on {fitted.get('on', '?')})",
            ))
        # the bundle's own test split (or drift check), then the same recipe trained on the other split protocol
        for block in (self.metrics, self.metrics_other_protocol or {}):
            seen = block.get("protocol") == "all"  # a model trained on every spectrum: int8 drift, not accuracy
            where = "drift check on spectra it was trained on" if seen else f"{block.get('protocol', '')} test"
            for name, scores in block.items():
                if isinstance(scores, dict) and "top1" in scores and name != "keras_float":
                    rows.append((f"{where}, {name}", f"top-1 {scores['top1']:.4f}  top-3 {scores['top3']:.4f}"))
            fused = block.get("answers", {}).get("fused")
            if fused:
                rows.append((
                    f"{where}, fused with the library",
                    f"top-1 {fused['top1']:.4f}  top-3 {fused['top3']:.4f}; identified {fused['identified']['coverage']:.2f} of spectra, "
                    f"right {fused['identified']['precision']:.3f}",
                ))
        return rows

    def trust_sentences(self) -> list[str]:
        """How far to trust the answers, one sentence each, from the held-out figures the manifest records
        (the grouped test split's, the grouped-fair files', the open-set gate's); what `info` and the README say."""
        grouped = self.metrics if self.metrics.get("protocol") == "grouped" else (self.metrics_other_protocol or {})
        out = []
        fused = grouped.get("answers", {}).get("fused")
        if fused:
            out.append(
                f"New specimens, excellent spectra ({grouped.get('test_spectra', '?')} held out): named first {100 * fused['top1']:.0f} % "
                f"of the time, in the top 3 {100 * fused['top3']:.0f} %; 'identified' on {100 * fused['identified']['coverage']:.0f} % "
                f"of them, right on {100 * fused['identified']['precision']:.0f} % of those."
            )
        fair = grouped.get("grouped_fair", {}).get("test", {}).get("fair_processed", {})
        if fair.get("spectra"):
            out.append(
                f"New specimens, fair-quality spectra ({fair['spectra']} RRUFF files): named first {100 * fair['fused_top1']:.0f} %, "
                f"in the top 3 {100 * fair['fused_top3']:.0f} %; 'identified' on {100 * fair['identified_coverage']:.0f} %, "
                f"right on {100 * fair['identified_precision']:.0f} % of those."
            )
        gate = self.calibration.get("fitted", {}).get("evidence_gate", {}).get("test")
        if gate:
            out.append(
                f"Minerals it does not know (open-set test): 'identified' on {100 * gate['unknown_identified']:.1f} % of their spectra; "
                f"on new specimens of known ones the gate is right {100 * gate['precision']:.1f} % of the time at {100 * gate['coverage']:.0f} % coverage."
            )
        return out


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    labels: list[str]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def member_paths(self) -> list[Path]:
        """Every model file of the bundle: one, or an ensemble's members."""
        return [self.path / name for name in self.manifest.members]

    @property
    def model_id(self) -> str:
        """Short, stable name of the model for logs: precision and the first 12 hex digits of its sha256
        (of its members' sha256s, for an ensemble, with their count)."""
        smoothed = f"-s{self.manifest.smoothing_cm1:g}" if self.manifest.smoothing_cm1 else ""  # the same network, other answers
        if len(self.manifest.members) == 1:
            return f"{self.manifest.precision}-{self.manifest.files[MODEL][:12]}{smoothed}"
        joined = hashlib.sha256("".join(self.manifest.files[m] for m in self.manifest.members).encode()).hexdigest()
        return f"{self.manifest.precision}x{len(self.manifest.members)}-{joined[:12]}{smoothed}"

    def _arrays(self, name: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path / name, allow_pickle=False) as data:
                arrays = {k: data[k] for k in keys}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{self.path}: unreadable {name} ({exc})") from None
        spectra = arrays["spectra"]
        if spectra.ndim != 2 or spectra.shape[1] != GRID.size or any(len(arrays[k]) != len(spectra) for k in keys):
            raise BundleError(f"{self.path}: {name} holds spectra of shape {spectra.shape}, not (n, {GRID.size}) with a name each")
        return arrays

    def library(self) -> ReferenceLibrary:
        """The bundle's reference library (empty if it has none)."""
        if LIBRARY not in self.manifest.files:
            return ReferenceLibrary.concat()
        a = self._arrays(LIBRARY, ("spectra", "minerals", "ids", "lasers"))
        spectra = a["spectra"] * np.float16(LIBRARY_STEP)  # uint8 steps -> float16, no float32 copy
        return ReferenceLibrary(spectra, a["minerals"], a["ids"], np.full(len(spectra), "bundle"), a["lasers"])

    def demo_spectra(self) -> list[tuple[str, np.ndarray]]:
        """(mineral, preprocessed spectrum) pairs the demo plays: spectra the library does not hold."""
        if DEMO not in self.manifest.files:
            return []
        a = self._arrays(DEMO, ("spectra", "minerals"))
        return [(str(m), s.astype(np.float32)) for m, s in zip(a["minerals"], a["spectra"])]

    def embedding_searches(self) -> list[EmbeddingSearch]:
        """Each member's references' embeddings and their weight, in the members' order; empty for a bundle without
        an embedding search."""
        if EMBEDDINGS not in self.manifest.files:
            return []
        weights = search_weights(self.manifest.embedding_search)
        searches = []
        for i, weight in enumerate(weights):
            name = embeddings_name(i)
            try:
                with np.load(self.path / name, allow_pickle=False) as data:
                    vectors, classes = data["vectors"].astype(np.float32), data["classes"]
                searches.append(EmbeddingSearch(vectors, classes, self.manifest.n_classes, weight))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise BundleError(f"{self.path}: unreadable {name} ({exc})") from None
        return searches

    def calibration(self) -> Calibration:
        return Calibration.from_dict(self.manifest.calibration) if self.manifest.calibration else Calibration()


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
    if not isinstance(manifest.members, list) or not manifest.members or manifest.members[0] != MODEL:
        raise BundleError(f"{path}: the manifest's members must be a list of model files starting with {MODEL}")
    if unlisted := [m for m in manifest.members if m not in manifest.files]:
        raise BundleError(f"{path}: ensemble member {unlisted[0]} has no sha256 in the manifest")
    try:
        labels = json.loads((path / LABELS).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable {LABELS} ({exc})") from None
    if len(labels) != manifest.n_classes:
        raise BundleError(f"{path}: {len(labels)} labels but the manifest says {manifest.n_classes} classes")
    bundle = Bundle(path=path, manifest=manifest, labels=labels)
    for name, keys in ((LIBRARY, ("spectra", "minerals", "ids", "lasers")), (DEMO, ("spectra", "minerals"))):
        if name in manifest.files:
            bundle._arrays(name, keys)  # a damaged library is refused now, not in the middle of a live session
    if EMBEDDINGS in manifest.files:  # each member embeds differently: a search (file and weight) per member
        wanted = [embeddings_name(i) for i in range(len(manifest.members))]
        if len(search_weights(manifest.embedding_search)) != len(wanted) or any(n not in manifest.files for n in wanted):
            raise BundleError(f"{path}: an embedding search for {len(wanted)} model(s) needs one per member ({', '.join(wanted)}, a weight each)")
    grid = manifest.grid_cm1 if isinstance(manifest.grid_cm1, dict) else {}
    if (grid.get("start"), grid.get("stop"), grid.get("size")) != (GRID[0], GRID[-1], GRID.size):
        raise BundleError(f"{path}: model grid {grid} is not this ramanedge's {GRID[0]:.0f}..{GRID[-1]:.0f} cm^-1")
    return bundle


def member_name(i: int) -> str:
    """File name of an ensemble's ``i``-th model (0: model.tflite)."""
    return MODEL if i == 0 else f"model-{i}.tflite"


def embeddings_name(i: int) -> str:
    """File name of the embedding search of an ensemble's ``i``-th model (0: embeddings.npz)."""
    return EMBEDDINGS if i == 0 else f"embeddings-{i}.npz"


def search_weights(record: dict[str, Any]) -> list[float]:
    """Each member's search weight from a manifest's ``embedding_search`` block (one weight: a single model's)."""
    weights = record.get("weights", [record.get("weight", 0.0)])
    return [float(w) for w in weights]


def write_bundle(
    out: Path,
    model_bytes: bytes | list[bytes],
    labels: list[str],
    library: ReferenceLibrary,
    demo: list[tuple[str, np.ndarray]],
    manifest: Manifest,
) -> Bundle:
    """Write a bundle folder: model (or an ensemble's models), labels, reference library (uint8), demo
    spectra (float16) and manifest; an embedding search joins it afterwards (:func:`with_embedding_search`: its
    references are embedded by the written model).

    The manifest's ``files`` and ``created`` are filled in here; the manifest is written last,
    through a temporary file and a rename, so a bundle is never left with a manifest that
    vouches for files that are not (yet) there. Returns the bundle as :func:`load_bundle` reads it.
    """
    out.mkdir(parents=True, exist_ok=True)
    models = [model_bytes] if isinstance(model_bytes, bytes) else list(model_bytes)
    members = [member_name(i) for i in range(len(models))]
    for name, content in zip(members, models):
        (out / name).write_bytes(content)
    (out / LABELS).write_text(json.dumps(labels, indent=0))
    stored = np.clip(np.round(np.asarray(library.spectra, np.float32) / LIBRARY_STEP), 0, 255).astype(np.uint8)
    with (out / LIBRARY).open("wb") as fh:
        np.savez_compressed(fh, spectra=stored, minerals=library.minerals, ids=library.ids, lasers=library.lasers)
    with (out / DEMO).open("wb") as fh:
        np.savez_compressed(
            fh,
            spectra=np.array([s for _, s in demo], dtype=np.float16).reshape(len(demo), GRID.size),
            minerals=np.array([m for m, _ in demo], dtype=str),
        )
    for stale in out.glob("embeddings*.npz"):
        stale.unlink()  # a bundle rewritten must not keep an old search beside its new model
    manifest = replace(
        manifest,
        library={**manifest.library, "spectra": len(library), "minerals": len(library.mineral_names), "stored_as": "uint8, steps of 1/255"},
        embedding_search={},
        files={name: sha256_of(out / name) for name in (*members, LABELS, LIBRARY, DEMO)},
        members=members,
        created=manifest.created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    _write_manifest(out, manifest)
    return load_bundle(out)


def with_metrics(
    bundle: Bundle, metrics: dict[str, Any], other_protocol: dict[str, Any] | None = None, calibration: Calibration | None = None
) -> Bundle:
    """The bundle with its scores (and calibration) written into the manifest (the files it vouches for are unchanged)."""
    manifest = replace(
        bundle.manifest,
        metrics=metrics,
        metrics_other_protocol=other_protocol,
        calibration=calibration.as_dict() if calibration else bundle.manifest.calibration,
    )
    _write_manifest(bundle.path, manifest)
    return load_bundle(bundle.path)


def with_embedding_search(bundle: Bundle, searches: EmbeddingSearch | list[EmbeddingSearch], **record: Any) -> Bundle:
    """The bundle with ``searches`` (one per member: its library's embeddings by that member, float16, and their
    weight) as ``embeddings.npz``, ``embeddings-1.npz``, ... and in the manifest, with ``record`` (the layer, what the
    weights were fitted on); only the new files and the manifest are written."""
    searches = [searches] if isinstance(searches, EmbeddingSearch) else list(searches)
    if len(searches) != len(bundle.manifest.members):
        raise BundleError(f"{bundle.path}: {len(searches)} embedding search(es) for {len(bundle.manifest.members)} model(s): an ensemble needs one per member")
    files = dict(bundle.manifest.files)
    for i, search in enumerate(searches):
        vectors, classes = search.in_given_order()  # row i: the library's reference i
        with (bundle.path / embeddings_name(i)).open("wb") as fh:
            np.savez_compressed(fh, vectors=vectors.astype(np.float16), classes=classes.astype(np.int32))
        files[embeddings_name(i)] = sha256_of(bundle.path / embeddings_name(i))
    first = searches[0]
    each = {"weights": [float(s.weight) for s in searches]} if len(searches) > 1 else {}
    manifest = replace(
        bundle.manifest,
        files=files,
        embedding_search={**record, "weight": float(first.weight), **each, "references": len(first.classes), "dim": first.dim},
    )
    _write_manifest(bundle.path, manifest)
    return load_bundle(bundle.path)


def with_input_smoothing(bundle: Bundle, record: dict[str, Any]) -> Bundle:
    """The bundle with its model input smoothed as ``record`` says (window_cm1, polyorder, fitted on; window 0: off);
    only the manifest is written. An embedding search's references were embedded through the old input: the caller
    embeds them again (``trainer export`` fits the window before it embeds the library)."""
    manifest = replace(bundle.manifest, input_smoothing=dict(record))
    _write_manifest(bundle.path, manifest)
    return load_bundle(bundle.path)


def _write_manifest(out: Path, manifest: Manifest) -> None:
    manifest = replace(manifest, format_version=FORMAT_VERSION if manifest.smoothing_cm1 else FORMAT_VERSION_UNSMOOTHED)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.as_dict(), indent=2))
    os.replace(tmp, out / MANIFEST)
