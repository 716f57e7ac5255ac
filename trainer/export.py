"""``trainer export``: a trained run -> a TFLite model bundle the edge can load and trust.

Keras (TensorFlow backend) -> SavedModel with a batch-1 signature -> TFLiteConverter. ``int8``
is full-integer quantisation (int8 input and output) calibrated on real preprocessed training
spectra. Weights trained under JAX load here because the run folder stores ``.weights.h5``
and the model is rebuilt from code; exporting through jax2tf is avoided on purpose.

Before converting, the float model's inference-mode accuracy is checked against its own
training-mode accuracy: BatchNorm folds its moving statistics into the exported graph, and if
they lag the batch statistics the exported model is wrong however well training looked.
After converting, the bundle is scored with the edge interpreter on the run's test split.

A network with an ``embedding_dense`` layer is exported with that layer as a second output, and the bundle
gets an embedding search (:mod:`edge.embedding_search`): its library's embeddings, computed by the exported model
itself through the edge interpreter, and a weight fitted on the grouped run's validation spectra and their fair/poor
files (a run on every spectrum ships its grouped twin's weight, as it ships its fusion). In an ensemble each member
gets its own search and weight (member i of a run on every spectrum takes member i's of its grouped twin). Everything scored after
that (fusion, gate, figures) sees the probabilities the device gives.

Before the search, the model input's smoothing (:func:`ramancore.preprocessing.smooth_measured_span`) is chosen
the same way: each window of SMOOTHING_WINDOWS_CM1 is written into the float32 bundle, its search refitted, and the
window whose model answer (with its search) is right first most often on the weighted validation spectra ships
(the smallest among equals; 0 is off); a run on every spectrum ships its grouped twin's window.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from edge.bundle import (
    MANIFEST,
    Bundle,
    Manifest,
    load_bundle,
    with_embedding_search,
    with_input_smoothing,
    with_metrics,
    write_bundle,
)
from edge.bundle import search_weights as search_weights_of
from edge.embedding_search import EmbeddingSearch
from edge.library import Calibration, Matcher, ReferenceLibrary
from edge.ranking import top_k_hits
from edge.runtime import Classifier
from ramancore.preprocessing import GRID, GRID_SIZE, SMOOTHING_POLYORDER
from trainer import calibration
from trainer.augment import field_degrade
from trainer.dataset import SpectraDataset
from trainer.embedding import SEARCH_LAYER, fit_weight, with_embedding_output
from trainer.errors import TrainerError
from trainer.field_set import (
    FIELD_SET_FILE,
    GROUPED_FAIR,
    FieldSet,
    default_path,
    grouped_fair,
    load_field_set,
    validation_fusion,
    validation_weights,
    validation_with_field,
)
from trainer.groups import derive_groups
from trainer.metrics import top_k_accuracy
from trainer.open_set import load_evidence_gate
from trainer.training import SPLIT_FIELDS, Run, check_one_split, load_run

PRECISIONS = ("int8", "float16", "float32")
#: What a geologist expects a demo to know first: rock-forming and gem minerals, in this order.
WELL_KNOWN = (
    "Quartz", "Calcite", "Gypsum", "Dolomite", "Hematite", "Corundum", "Orthoclase", "Albite", "Microcline",
    "Forsterite", "Fayalite", "Diopside", "Enstatite", "Augite", "Almandine", "Pyrope", "Grossular", "Andradite",
    "Beryl", "Elbaite", "Schorl", "Muscovite", "Rutile", "Magnetite", "Pyrite", "Fluorite", "Zircon", "Titanite",
    "Epidote", "Kyanite", "Topaz", "Spinel", "Aragonite", "Malachite", "Jadeite", "Spodumene",
)
#: How many held-out spectra a bundle carries for ``ramanedge demo`` to play.
DEMO_SPECTRA = 36
REPRESENTATIVE_SPECTRA = 300
#: Training spectra a run without a test part (``--split all``) is checked for int8 drift on.
DRIFT_CHECK_SPECTRA = 1000
#: Most top-1 points an exported model may differ from float32, either way, before export refuses it.
MAX_TOP1_CHANGE = 0.02
#: Refuse an exported model whose first place is tied (two classes at the same output) for more
#: than this share of test spectra: its answers would be decided by class order, not by the model.
MAX_TIED_SHARE = 0.5
#: Model input smoothing windows (cm^-1) tried on validation; 0: none. Three grouped splits of the shipped recipe
#: (Keras float, benchmarks/input_smoothing.py) rose on validation up to 21-31 cm^-1 and fell at 41.
SMOOTHING_WINDOWS_CM1 = (0.0, 9.0, 13.0, 17.0, 21.0, 25.0, 31.0)
#: Inference-mode accuracy on training spectra below this fraction of the training-mode
#: accuracy (dropout on, batch statistics) means BatchNorm's moving statistics are off.
INFERENCE_MODE_FLOOR = 0.8


class ExportError(TrainerError):
    """Export refused or failed; one line saying why."""


def check_inference_mode(
    model: keras.Model, run: Run, dataset: SpectraDataset, labels: np.ndarray, rows: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """Inference-mode accuracy on training spectra and on ``rows`` (the test split), refused if BatchNorm
    statistics lag; and the model's (len(rows), classes) probabilities on ``rows``."""
    rng = np.random.default_rng(0)
    train_rows = rng.choice(run.split.train, size=min(1000, len(run.split.train)), replace=False)
    train_acc = float(np.mean(model.predict(dataset.X[train_rows, :, None], batch_size=256, verbose=0).argmax(1) == labels[train_rows]))
    best = run.config.best_epoch - 1
    training_mode = float(run.history["accuracy"][best])
    if train_acc < INFERENCE_MODE_FLOOR * training_mode:
        raise ExportError(
            f"{run.path}: inference-mode accuracy on training spectra is {train_acc:.3f} against {training_mode:.3f} "
            "in training mode; BatchNorm moving statistics are off (retrain with a lower --bn-momentum), not exporting"
        )
    test_proba = model.predict(dataset.X[rows, :, None], batch_size=256, verbose=0)
    return {
        "train_inference_accuracy": train_acc,
        "train_training_mode_accuracy": training_mode,
        **topk(test_proba, labels[rows]),
    }, test_proba


def topk(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"top1": top_k_accuracy(y, proba, 1), "top3": top_k_accuracy(y, proba, 3)}


def convert(model: keras.Model, precision: str, representative: np.ndarray) -> bytes:
    """TFLite flatbuffer of ``model`` with a fixed batch of 1."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(
            str(saved),
            format="tf_saved_model",
            input_signature=[tf.TensorSpec((1, GRID_SIZE, 1), tf.float32, name="spectrum")],
            verbose=False,
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if precision == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([x[None, :, None]] for x in representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            return converter.convert()
        except Exception as exc:  # the converter raises many types; all mean the same to the user
            raise ExportError(f"TFLite converter failed for {precision}: {str(exc).splitlines()[0]}") from None


def bundle_probabilities(bundle_dir: Path, X: np.ndarray) -> np.ndarray:
    """(n, classes) outputs of a bundle on preprocessed spectra (n, GRID_SIZE), through the edge interpreter, one at a time."""
    classifier = Classifier(load_bundle(bundle_dir), num_threads=1)
    return np.stack([classifier.probabilities(x) for x in X])


def check_exported(precision: str, proba: np.ndarray, metrics: dict[str, float], float_metrics: dict[str, float]) -> None:
    """Refuse an exported model that is degenerate or that moved too far from the float model.

    ``proba``: (n, classes) outputs of the exported model on the test spectra. A model that
    outputs the same vector for every spectrum, or whose first place is mostly a tie, can still
    "score" by luck of the class order; neither is a classifier.
    """
    if len(proba) > 1 and float(np.ptp(proba, axis=0).max()) == 0.0:
        raise ExportError(f"{precision} model gives the same outputs for every test spectrum (degenerate); not exporting")
    ordered = np.sort(proba, axis=1)
    tied = float(np.mean(ordered[:, -1] == ordered[:, -2])) if proba.shape[1] > 1 else 0.0
    if tied > MAX_TIED_SHARE:
        raise ExportError(
            f"{precision} model ties for first place on {100 * tied:.0f} % of the test spectra "
            f"(more than {100 * MAX_TIED_SHARE:.0f} %: degenerate outputs); not exporting"
        )
    change = metrics["top1"] - float_metrics["top1"]
    if abs(change) > MAX_TOP1_CHANGE:
        raise ExportError(
            f"{precision} top-1 {metrics['top1']:.4f} differs from float32 {float_metrics['top1']:.4f} by "
            f"{100 * change:+.2f} points (more than {100 * MAX_TOP1_CHANGE:.0f} either way); not exporting"
        )


def reference_library(dataset: SpectraDataset, rows: np.ndarray, field: FieldSet | None = None) -> ReferenceLibrary:
    """Every spectrum of ``rows`` (the run's training spectra only: a library evaluated on a split
    never holds a validation or test specimen) with its mineral, RRUFF id and laser; with ``field``, also the
    fair/poor set's processed files of those spectra's specimens and minerals (:func:`library_field_rows`)."""
    ids = np.where(dataset.rruff_id[rows] != "", dataset.rruff_id[rows], dataset.source[rows])
    X, minerals, lasers = dataset.X[rows], dataset.mineral[rows], dataset.laser_nm[rows]
    if field is not None:
        extra = library_field_rows(field, dataset, rows)
        X = np.concatenate([X, field.X[extra]])
        minerals = np.concatenate([minerals, field.mineral[extra]])
        ids = np.concatenate([ids, np.where(field.rruff_id[extra] != "", field.rruff_id[extra], field.file[extra])])
        lasers = np.concatenate([lasers, field.laser_nm[extra]])
    return ReferenceLibrary(X, minerals, ids, np.full(len(minerals), "bundle"), lasers)


def library_field_rows(field: FieldSet, dataset: SpectraDataset, rows: np.ndarray) -> np.ndarray:
    """The fair/poor set's processed files that may join a library of the dataset's ``rows``: those of the
    specimens (and minerals) among ``rows`` only, so a grouped run's library never holds a file of a
    validation or test specimen. RAW files stay out: their processed twins are these."""
    return field.training_rows(dataset.specimen[rows], sorted(set(dataset.mineral[rows].tolist())), kinds=("processed",))


def demo_spectra(dataset: SpectraDataset, rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Spectra for the demo to play, from ``rows`` (the test split: in neither model nor library):
    one of each well-known mineral the split holds, in WELL_KNOWN order, then others, DEMO_SPECTRA in all:
    the order the demo plays them in."""
    rng = np.random.default_rng(0)
    rows = rng.permutation(rows)
    first: dict[str, int] = {}
    for i in rows:
        first.setdefault(str(dataset.mineral[i]), int(i))
    known = [first[m] for m in WELL_KNOWN if m in first]
    chosen = set(known)
    rest = [int(i) for i in rows if i not in chosen]
    return [(str(dataset.mineral[i]), dataset.X[i]) for i in (known + rest)[:DEMO_SPECTRA]]


def bundle_manifest(runs: list[Run], precision: str, io: dict, demo: str = "", field_files: int = 0) -> Manifest:
    """The manifest of a run's (or an ensemble's) bundle, before its files are hashed and its metrics measured."""
    run = runs[0]
    return Manifest(
        precision=precision,
        n_classes=len(run.classes),
        grid_cm1={"start": float(GRID[0]), "stop": float(GRID[-1]), "step": float(GRID[1] - GRID[0]), "size": int(GRID.size)},
        preprocessing="ramancore.preprocessing.preprocess: per-spectrum min-max, linear resampling to the grid, zero outside the measured range",
        input=io["input"],
        output=io["output"],
        training={
            "run": run.path.name,
            **({"ensemble": [r.path.name for r in runs]} if len(runs) > 1 else {}),
            "dataset_sha256": run.config.dataset_sha256,
            "dataset": run.config.dataset_summary,
            "protocol": run.split.protocol,
            "seed": run.split.seed,
            "arch": run.fit_config.arch,
            "width": run.fit_config.width,
            "recipe": {k: v for k, v in asdict(run.fit_config).items() if k not in (*SPLIT_FIELDS, "init_from")},
            "started_from": Path(run.fit_config.init_from).name if run.fit_config.init_from else None,
            "augmentation": run.config.augmentation,
            "epochs_run": run.config.epochs_run,
            "epochs_kept": epochs_kept(run),
            "train_seconds": run.config.train_seconds,
            "parameters": run.config.parameters,
            "device": run.config.device,
            "extra_training_spectra": run.config.extra_training_spectra,
            "data": _training_data(run),
        },
        library={"holds": _library_holds(run, field_files), "demo": demo},
        files={},
    )


def epochs_kept(run: Run) -> str:
    """Which epoch's weights a run kept, and the run it started from where its folder is still there: a grouped twin's
    figures speak for the shipped model only if both kept the same (its best validation epoch, or its last)."""
    kept = f"{run.config.best_epoch} of {run.config.epochs_run}"
    if not run.fit_config.init_from:
        return kept
    try:
        start = load_run(run.fit_config.init_from)
    except TrainerError:
        return f"{kept}, from {Path(run.fit_config.init_from).name} (its folder not found)"
    return f"{kept}, from {start.path.name}: {start.config.best_epoch} of {start.config.epochs_run}"


def _training_data(run: Run) -> str:
    """What the run learnt from, in words, for the manifest."""
    part = "every spectrum" if run.split.protocol == "all" else f"the training part of the {run.split.protocol} split (seed {run.split.seed})"
    data = f"{part} of {run.config.dataset_summary}"
    config = run.fit_config
    if config.extra_train:
        kinds = " and ".join(config.extra_kinds.split(","))
        data += (
            f", plus {run.config.extra_training_spectra} fair/poor RRUFF files ({kinds}) of its training specimens "
            f"({Path(config.extra_train).name}: no longer a test for this model)"
        )
    if config.init_from:
        data += f"; trained {run.config.epochs_run} epochs on from run {Path(config.init_from).name}"
        if config.contrastive:
            data += f" with a supervised contrastive loss across specimens (weight {config.contrastive:g})"
    return data


def _library_holds(run: Run, field_files: int = 0) -> str:
    """What the bundle's library holds, in words; ``field_files``: fair/poor processed files among them."""
    if run.split.protocol == "all":
        holds = f"every spectrum of the dataset {run.path.name} was trained on ({run.config.dataset_summary})"
    else:
        holds = f"the training spectra of {run.path.name}'s {run.split.protocol} split (no validation or test spectrum)"
    if field_files:
        holds += f", plus {field_files} fair/poor RRUFF processed files of those specimens ({FIELD_SET_FILE}: no longer a test for this bundle)"
    return holds


def _io_details(model_bytes: bytes, n_classes: int) -> dict:
    """The input's and the class probabilities' dtype, shape and quantisation (an embedding output is not described)."""
    from edge.runtime import interpreter_class

    cls, _ = interpreter_class()
    interpreter = cls(model_content=model_bytes)
    details = {}
    (model_input,) = interpreter.get_input_details()
    probabilities = next(o for o in interpreter.get_output_details() if int(o["shape"][-1]) == n_classes)
    for key, d in (("input", model_input), ("output", probabilities)):
        scale, zero_point = d["quantization"]
        details[key] = {"dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]], "scale": float(scale), "zero_point": int(zero_point)}
    return details


def _check_rows(run: Run) -> tuple[np.ndarray, str]:
    """The rows a run's exported model is scored on: its test part, or for a run trained on every
    spectrum (``--split all``) a seeded sample of them, which can only show drift from float32."""
    if len(run.split.test):
        return run.split.test, "test split"
    rows = np.sort(np.random.default_rng(0).choice(run.split.train, size=min(DRIFT_CHECK_SPECTRA, len(run.split.train)), replace=False))
    return rows, f"{len(rows)} of its training spectra (drift from float32 only: the model saw them)"


def _field_set_for(run: Run) -> FieldSet | None:
    """The fair/poor set: the one the run trained on, else the shared one; None where there is none."""
    path = run.fit_config.extra_train or default_path()
    return load_field_set(path) if path else None


def _demo_for(run: Run, dataset: SpectraDataset, field: FieldSet | None) -> tuple[list[tuple[str, np.ndarray]], str]:
    """The demo's spectra and what they are: the test split's, or for a run trained on every spectrum the
    fair/poor set's RAW files cleaned on the device path (no library spectrum; a processed twin may be training data)."""
    if len(run.split.test):
        return demo_spectra(dataset, run.split.test), f"{run.path.name}'s test split (in neither model nor library)"
    if field is None:
        raise ExportError(f"{run.path}: trained on every spectrum, so the demo needs the fair/poor set ({FIELD_SET_FILE}); none found")
    raw = np.flatnonzero((field.kind == "raw") & np.isin(field.mineral, run.classes))
    rows = raw[np.random.default_rng(0).permutation(len(raw))]
    rows = rows[np.argsort(field.quality[rows] != "fair", kind="stable")]  # fair files first, then poor ones
    first: dict[str, int] = {}
    for i in rows:
        first.setdefault(str(field.mineral[i]), int(i))
    known = [first[m] for m in WELL_KNOWN if m in first and field.quality[first[m]] == "fair"]
    chosen = (known + [int(i) for i in rows if int(i) not in set(known)])[:DEMO_SPECTRA]
    return [(str(field.mineral[i]), field.X[i]) for i in chosen], (
        "fair (then poor) RRUFF RAW files cleaned on the device path: in no library; their processed twins may be training data (or library spectra)"
    )


@dataclass
class _Export:
    """What converting and scoring one run (or an ensemble of runs on one split) works from, prepared once."""

    runs: list[Run]
    dataset: SpectraDataset
    labels: np.ndarray  #: (n,) label index of every dataset row in the run's class order
    rows: np.ndarray  #: the rows scored: the test split, or a drift-check sample of a run on every spectrum
    scored_on: str
    models: list[keras.Model]  #: what is converted: each member, with its embedding as a second output where it has a search
    float_probas: list[np.ndarray]  #: each member's Keras probabilities on ``rows``
    library: ReferenceLibrary
    groups: list[list[str]]
    field: FieldSet | None
    demo: list[tuple[str, np.ndarray]]
    demo_note: str
    searched: bool  #: every member has an embedding layer: the bundle gets an embedding search per member

    @property
    def run(self) -> Run:
        return self.runs[0]

    @property
    def field_files(self) -> int:
        """Fair/poor processed files in the library, beside the run's training spectra."""
        return len(self.library) - len(self.run.split.train)


def _prepare(runs: list[Run], dataset_path: str | Path | None, log, library_field: bool = False) -> _Export:
    """Load and check the members (inference mode), and gather the library (with ``library_field``, the fair/poor
    processed files of the training specimens too), the groups, the field set and the demo."""
    check_one_split(runs)
    run = runs[0]
    dataset = run.load_dataset(dataset_path)
    labels = dataset.labels(run.classes)
    if len(run.split.train) == 0:
        raise ExportError(f"{run.path}: no training spectra to calibrate the quantisation with")
    rows, scored_on = _check_rows(run)
    models, float_probas = [], []
    for member in runs:
        model = member.build_trained_model()
        keras_metrics, member_proba = check_inference_mode(model, member, dataset, labels, rows)
        log(
            f"{member.path.name}: float Keras model, inference mode: top-1 {keras_metrics['top1']:.4f} on {scored_on}, "
            f"training spectra {keras_metrics['train_inference_accuracy']:.4f} (training mode {keras_metrics['train_training_mode_accuracy']:.4f})"
        )
        models.append(model)
        float_probas.append(member_proba)
    with_embedding = [with_embedding_output(model) for model in models]
    searched = all(model is not None for model in with_embedding)
    if searched:
        models = [model for model in with_embedding if model is not None]
        log(f"{', '.join(r.path.name for r in runs)}: exported with the {SEARCH_LAYER} layer as a second output, for the embedding search")
    groups = derive_groups(dataset.X[run.split.train], dataset.mineral[run.split.train], dataset.specimen[run.split.train])
    log(f"{run.path.name}: {len(groups)} Raman-indistinguishable groups of {sum(map(len, groups))} minerals among its training spectra")
    field = _field_set_for(run)
    demo, demo_note = _demo_for(run, dataset, field)
    if library_field and field is None:
        raise ExportError(f"{run.path}: --library-field-files needs the fair/poor set ({FIELD_SET_FILE}); none found")
    library = reference_library(dataset, run.split.train, field if library_field else None)
    job = _Export(runs, dataset, labels, rows, scored_on, models, float_probas, library, groups, field, demo, demo_note, searched)
    if library_field:
        log(f"{run.path.name}: library of {len(library)} spectra, {job.field_files} of them fair/poor processed files of its training specimens")
    return job


def _convert(
    job: _Export, precision: str, out: Path, scratch: Path, log, search_weights: list[float] | None = None, smoothing: dict | None = None
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Convert the members at float32 and ``precision``, write each bundle (``precision``'s to ``out``, with its
    input smoothing: ``smoothing`` given, or fitted on the float32 bundle; and its embedding searches where it has
    them: ``search_weights`` given, one per member, or fitted) and score it through the edge interpreter on the scored rows, clean and
    field-degraded; refuse a drifted or degenerate model. Returns the metrics and ``precision``'s probabilities on
    both."""
    run, rows = job.run, job.rows
    rng = np.random.default_rng(0)
    representative = job.dataset.X[rng.choice(run.split.train, size=min(REPRESENTATIVE_SPECTRA, len(run.split.train)), replace=False)]
    X_test, y_test = job.dataset.X[rows], job.labels[rows]
    X_field = field_degrade(X_test, seed=run.split.seed)
    metrics: dict = {"scored_on": job.scored_on}
    for p in ["float32"] if precision == "float32" else ["float32", precision]:
        model_bytes = [convert(model, p, representative) for model in job.models]
        target = out if p == precision else scratch / f"{run.path.name}-{p}"
        manifest = replace(
            bundle_manifest(job.runs, p, _io_details(model_bytes[0], len(run.classes)), job.demo_note, job.field_files), groups=job.groups
        )
        bundle = write_bundle(target, model_bytes, run.classes, job.library, job.demo, manifest)
        if smoothing is None:
            smoothing = _fit_input_smoothing(job, bundle, log)
        bundle = with_input_smoothing(bundle, smoothing)
        if job.searched:
            searches, fitted_on, _ = _embedding_searches(job, bundle, search_weights)
            with_embedding_search(bundle, searches, layer=SEARCH_LAYER, fitted_on=fitted_on)
            log(
                f"{run.path.name}: {p} embedding search over {len(searches[0].classes)} references, "
                f"weight {', '.join(f'{s.weight:g}' for s in searches)} ({fitted_on})"
            )
        proba = bundle_probabilities(target, X_test)
        metrics[p] = topk(proba, y_test)
        field_proba = bundle_probabilities(target, X_field)
        metrics[f"{p}_field_degraded"] = topk(field_proba, y_test)
        log(
            f"{run.path.name}: {p} TFLite through the edge interpreter: top-1 {metrics[p]['top1']:.4f}, "
            f"top-3 {metrics[p]['top3']:.4f} on {job.scored_on}; field-degraded top-1 {metrics[f'{p}_field_degraded']['top1']:.4f}"
        )
        if p != "float32":
            check_exported(p, proba, metrics[p], metrics["float32"])
    return metrics, proba, field_proba


def _member_outputs(classifier: Classifier, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each member's (n, classes) own probabilities and (n, d) embeddings of the (n, GRID_SIZE) spectra ``X``."""
    per_spectrum = [classifier.member_outputs(x) for x in X]
    outputs = []
    for i in range(len(classifier.members)):
        P, E = [], []
        for member_outputs in per_spectrum:
            p, e = member_outputs[i]
            if e is None:
                raise ExportError(f"{classifier.bundle.path}: its model {i} gives no embedding output")
            P.append(p)
            E.append(e)
        outputs.append((np.stack(P), np.stack(E)))
    return outputs


def _fit_input_smoothing(job: _Export, bundle: Bundle, log) -> dict:
    """The input smoothing record whose window (of SMOOTHING_WINDOWS_CM1) gives the most weighted validation top-1
    through ``bundle`` (its model with its embedding search refitted for each window), the smallest among equals;
    the scores of every window go into the record. Without validation spectra: none."""
    run = job.run
    if not len(run.split.val):
        return {}
    X, y, joined = _validation(job)
    weights = validation_weights(len(y), joined)
    scores = {}
    for window in SMOOTHING_WINDOWS_CM1:
        bundle = with_input_smoothing(bundle, {"window_cm1": window, "polyorder": SMOOTHING_POLYORDER})
        if job.searched:
            _, _, fitted = _embedding_searches(job, bundle, None)  # the model's validation answers, its searches refitted
            assert fitted is not None  # no weight was given, so it was fitted on these spectra
            P = fitted
        else:
            P = bundle_probabilities(bundle.path, X)
        scores[window] = float(np.sum(weights * top_k_hits(y, P, 1)) / np.sum(weights))
    best = max(SMOOTHING_WINDOWS_CM1, key=lambda w: (scores[w], -w))
    log(
        f"{run.path.name}: model input smoothing {best:g} cm^-1, chosen on validation (weighted top-1 by window: "
        + ", ".join(f"{w:g}: {scores[w]:.4f}" for w in SMOOTHING_WINDOWS_CM1) + ")"
    )
    return {
        "window_cm1": best,
        "polyorder": SMOOTHING_POLYORDER,
        "fitted_on": f"{run.path.name} validation ({run.split.protocol} split; {joined} fair/poor files among {len(y)}, weighted to count as much)",
        "validation_top1_by_window": {f"{w:g}": round(scores[w], 4) for w in SMOOTHING_WINDOWS_CM1},
    }


def _validation(job: _Export) -> tuple[np.ndarray, np.ndarray, int]:
    """The run's validation spectra with, for a grouped run, its validation specimens' fair/poor files
    (:func:`trainer.field_set.validation_with_field`): what the search's weight and the input smoothing are fitted on."""
    run, dataset = job.run, job.dataset
    field = job.field if run.split.protocol == "grouped" else None  # a random split's validation specimens were in training
    return validation_with_field(dataset.X[run.split.val], job.labels[run.split.val], field, dataset.specimen[run.split.val], run.classes)


def _embedding_searches(
    job: _Export, bundle: Bundle, weights: list[float] | None
) -> tuple[list[EmbeddingSearch], str, np.ndarray | None]:
    """Each member's search: the library's embeddings by that member of the written bundle (the device's numbers) and
    its weight: ``weights`` (a grouped twin's, one per member), or fitted on the run's validation spectra (and their
    specimens' fair/poor files, for a grouped run) through the bundle; what they were fitted on; and, where they were
    fitted, the ensemble's answers on those spectra with the searches fused in ((n, classes); None where ``weights``
    were given)."""
    run = job.run
    classifier = Classifier(bundle, num_threads=1)
    references = _member_outputs(classifier, np.asarray(job.library.spectra, np.float32))
    searches = [EmbeddingSearch.of_library(E, list(job.library.minerals), run.classes) for _, E in references]
    if weights is not None:
        if len(weights) != len(searches):
            raise ExportError(
                f"{run.path}: its grouped twin has {len(weights)} member(s) and this export {len(searches)}; "
                "export the twin as an ensemble of as many members (--other-protocol-run, once per member)"
            )
        for search, weight in zip(searches, weights):
            search.weight = weight
        return searches, "the grouped run of the same recipe (--other-protocol-run)", None
    if not len(run.split.val):
        raise ExportError(f"{run.path}: no validation spectra to fit the embedding search on; pass --other-protocol-run GROUPED_RUN")
    X, y, joined = _validation(job)
    fused = []
    for search, (P, E) in zip(searches, _member_outputs(classifier, X)):
        search.weight, _ = fit_weight(P, search.best_cosine(E), y, validation_weights(len(y), joined))
        fused.append(search.fuse(P, E))
    fitted_on = f"{run.path.name} validation ({run.split.protocol} split; {joined} fair/poor files among {len(y)})"
    return searches, fitted_on + (", each member's weight its own" if len(searches) > 1 else ""), np.mean(fused, axis=0)


def _calibrate(job: _Export, out: Path, log) -> Calibration:
    """The fusion and thresholds fitted on the run's validation spectra (with its validation specimens' fair/poor
    files, for a grouped run), through the written bundle."""
    run = job.run
    if not len(run.split.val):
        raise ExportError(f"{run.path}: no validation spectra to calibrate the fusion on; pass --other-protocol-run GROUPED_RUN")
    field = job.field if run.split.protocol == "grouped" else None  # a random split's validation specimens were in training
    fusion = validation_fusion(run, job.dataset, job.library, field, lambda X: bundle_probabilities(out, X))
    if run.split.protocol != "grouped":
        log(
            f"{run.path.name}: calibrating on a random split's validation spectra, whose specimens the model has seen: "
            "the thresholds will over-promise on new specimens; pass --other-protocol-run GROUPED_RUN to calibrate on those"
        )
    log(
        f"{run.path.name}: fusion calibrated on {fusion.fitted['spectra']} validation spectra: temperature {fusion.temperature:.3f}, "
        f"library weight {fusion.library_weight:.2f} x exp(-{fusion.library_noise_decay:.0f} x noise), identified from {fusion.identified:.3f}, not in library under HQI {fusion.not_in_library_hqi:.0f}"
    )
    return fusion


def _score_answers(job: _Export, matcher: Matcher, proba: np.ndarray, field_proba: np.ndarray, out: Path, precision: str, log) -> dict:
    """The answers as the device gives them: model alone, library alone and fused on the test split (clean and
    field-degraded), and for a grouped run the grouped-fair files of its test and validation specimens."""
    run, metrics = job.run, {}
    X_test, y_test = job.dataset.X[job.rows], job.labels[job.rows]
    if len(run.split.test):
        metrics["answers"] = calibration.score_answers(matcher, proba, X_test, y_test)
        metrics["answers_field_degraded"] = calibration.score_answers(matcher, field_proba, field_degrade(X_test, seed=run.split.seed), y_test)
        answers = metrics["answers"]
        log(
            f"{run.path.name}: {precision} answers on the test split: model top-1 {answers['model']['top1']:.4f}, "
            f"library {answers['library']['top1']:.4f}, fused {answers['fused']['top1']:.4f} (group level {answers['fused']['group_top1']:.4f}); "
            f"identified {answers['fused']['identified']}"
        )
    if run.split.protocol == "grouped" and job.field is not None:
        parts = {"test": job.dataset.specimen[run.split.test], "validation": job.dataset.specimen[run.split.val]}
        metrics[GROUPED_FAIR] = grouped_fair(job.field, parts, matcher, lambda X: bundle_probabilities(out, X))
        cell = metrics[GROUPED_FAIR]["test"]["fair_processed"]
        if cell["spectra"]:
            log(
                f"{run.path.name}: {precision} grouped-fair, fair processed test files ({cell['spectra']}): model top-1 {cell['model_top1']:.4f}, "
                f"library {cell['library_top1']:.4f}, fused {cell['fused_top1']:.4f} / top-3 {cell['fused_top3']:.4f}"
            )
    return metrics


def with_evidence_gate(fusion: Calibration, gate: tuple[dict, dict]) -> Calibration:
    """The calibration answering with an open-set evidence gate (:func:`trainer.open_set.load_evidence_gate`), which
    holds only for answers fused as the ones it was fitted on: with or without a library weight falling with noise."""
    if bool(gate[1].get("fusion_noise_falling")) != bool(fusion.library_noise_decay):
        fitted = "with" if gate[1].get("fusion_noise_falling") else "without"
        raise ExportError(
            f"{gate[1]['from']}: its gate was fitted on answers fused {fitted} a library weight falling with noise, this "
            f"bundle's fusion is {'with' if fusion.library_noise_decay else 'without'} one; rerun `trainer openset` with this code"
        )
    return replace(fusion, evidence_gate=gate[0], fitted={**fusion.fitted, "evidence_gate": gate[1]})


def _convert_and_score(
    runs: list[Run],
    dataset_path: str | Path | None,
    precision: str,
    out: Path,
    scratch: Path,
    log,
    fusion: Calibration | None = None,
    gate: tuple[dict, dict] | None = None,
    search_weights: list[float] | None = None,
    smoothing: dict | None = None,
    library_field: bool = False,
) -> tuple[dict, Calibration, list[float] | None, dict]:
    """Prepare, convert, calibrate and score one run (or an ensemble's member runs, the first giving the library
    and recipe); its bundle is written to ``out``.

    The fusion of model and library is calibrated on this run's validation spectra unless ``fusion`` (fitted on a
    grouped run of the same recipe) is given, and so are the embedding search's weight and the input smoothing unless
    ``search_weights`` (one per member) and ``smoothing`` are; ``gate`` (an open-set evidence gate and its record) joins the calibration
    before any answer is scored. Returns the metrics block of the manifest, the calibration, the searches' weights,
    one per member (None: no search), and the input smoothing record. ``library_field``: the fair/poor processed files of the
    training specimens join the library.
    """
    job = _prepare(runs, dataset_path, log, library_field)
    metrics, proba, field_proba = _convert(job, precision, out, scratch, log, search_weights, smoothing)
    fusion = fusion if fusion is not None else _calibrate(job, out, log)
    if gate is not None:
        fusion = with_evidence_gate(fusion, gate)
    metrics.update(_score_answers(job, Matcher(job.run.classes, job.library, fusion, job.groups), proba, field_proba, out, precision, log))
    written = load_bundle(out).manifest
    search = written.embedding_search
    return {
        **metrics,
        "keras_float": topk(np.mean(job.float_probas, axis=0), job.labels[job.rows]),
        "ensemble": len(runs),
        "test_spectra": int(len(job.rows)),
        "n_classes": len(job.run.classes),
        "protocol": job.run.split.protocol,
        "run": job.run.path.name,
        "epochs_kept": epochs_kept(job.run),
        "embedding_search": search,
        "input_smoothing_cm1": written.smoothing_cm1,
    }, fusion, (search_weights_of(search) if search else None), written.input_smoothing


def export(
    run_dirs: str | Path | list[str | Path],
    out: str | Path,
    precision: str = "int8",
    dataset_path: str | Path | None = None,
    log=print,
    other_protocol_runs: str | Path | list[str | Path] | None = None,
    evidence_gate: str | Path | None = None,
    input_smoothing_cm1: float | None = None,
    library_field: bool = False,
) -> Manifest:
    """Export a run (or several runs of one split as an ensemble: the device averages their
    probabilities) as a bundle in ``out``; returns the manifest (with float vs exported metrics).

    ``other_protocol_runs``: the same recipe (ensemble) trained on the other split protocol (e.g.
    grouped by specimen); it is converted and scored the same way, and its metrics go into the
    manifest beside the exported run's, so the bundle says what to expect on a new specimen.
    ``evidence_gate``: an open-set run (or its ``open_set.json``, or a pooled gate's report) whose evidence gate the bundle answers
    *identified* with (:mod:`trainer.open_set`); its test figures go into the calibration's record.
    ``input_smoothing_cm1``: the model input's smoothing window (0: none); None: fitted on validation (a run on every
    spectrum takes its grouped twin's).
    ``library_field``: the fair/poor set's processed files of the training specimens join the library (of the
    exported run and of its grouped twin alike), so a user's fair measurement meets references of its own quality.
    """
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"export needs the TensorFlow backend, not {keras.backend.backend()}: set KERAS_BACKEND=tensorflow")
    runs = [load_run(r) for r in (run_dirs if isinstance(run_dirs, list) else [run_dirs])]
    others = [load_run(r) for r in (other_protocol_runs if isinstance(other_protocol_runs, list) else [other_protocol_runs] if other_protocol_runs else [])]
    run, other = runs[0], (others[0] if others else None)
    if other is not None and other.split.protocol == run.split.protocol:
        raise ExportError(f"{other.path}: uses the same split protocol ({run.split.protocol}) as {run.path}")
    if run.split.protocol == "all" and (other is None or other.split.protocol != "grouped"):
        raise ExportError(
            f"{run.path}: trained on every spectrum, so it has no held-out spectra for its figures and calibration; "
            "pass --other-protocol-run GROUPED_RUN (the same recipe on the grouped split)"
        )
    if others and len(others) != len(runs):
        raise ExportError(
            f"{others[0].path}: the other protocol's ensemble has {len(others)} member(s), this one {len(runs)}: its fusion and "
            "figures speak for as many members only (--other-protocol-run once per member)"
        )
    gate = load_evidence_gate(evidence_gate) if evidence_gate else None
    if gate is not None and gate[1]["members"] != len(runs):
        raise ExportError(
            f"{evidence_gate}: its gate was fitted on the answers of {gate[1]['members']} model(s) averaged, this bundle averages "
            f"{len(runs)}; rerun `trainer openset` with as many (--member)"
        )
    if gate is not None and (other is None or other.split.protocol != "grouped"):
        raise ExportError("--evidence-gate needs --other-protocol-run GROUPED_RUN: the gate is fitted with the grouped run's fusion")
    smoothing_from = "given (--input-smoothing)"
    if gate is not None:
        gate_smoothing = float(gate[1].get("input_smoothing_cm1", 0.0))
        if input_smoothing_cm1 is None:
            input_smoothing_cm1 = gate_smoothing  # the gate holds for the answers it was fitted on
            smoothing_from = f"the evidence gate's ({gate[1]['from']}: trainer openset --input-smoothing)"
            log(f"{evidence_gate}: its gate was fitted on answers with {gate_smoothing:g} cm^-1 input smoothing: the bundle smooths as much")
        elif input_smoothing_cm1 != gate_smoothing:
            raise ExportError(
                f"{evidence_gate}: its gate was fitted on answers with {gate_smoothing:g} cm^-1 input smoothing, not {input_smoothing_cm1:g}; "
                f"rerun `trainer openset --input-smoothing {input_smoothing_cm1:g}` or export with --input-smoothing {gate_smoothing:g}"
            )
    if gate is not None and bool(gate[1].get("library_field_files")) != library_field:
        fitted = "with" if gate[1].get("library_field_files") else "without"
        raise ExportError(
            f"{evidence_gate}: its gate was fitted {fitted} the fair/poor files in the library; export "
            f"{fitted} --library-field-files, or rerun `trainer openset` to match"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise ExportError(f"{out}: exists and is not a model bundle; not overwriting it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # built beside its place and renamed into it: a refused or failed export leaves the old bundle as it was
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            given = None if input_smoothing_cm1 is None else {"window_cm1": input_smoothing_cm1, "polyorder": SMOOTHING_POLYORDER, "fitted_on": smoothing_from}
            other_metrics, other_fusion, other_weights, other_smoothing = (
                _convert_and_score(
                    others, None, precision, Path(tmp) / "other", Path(tmp), log, gate=gate, smoothing=given, library_field=library_field
                )
                if others else (None, None, None, None)
            )
            # a grouped run's calibration was fitted on specimens its model never saw: the honest one to ship
            twin = other is not None and other.split.protocol == "grouped"
            fusion, weights, smoothing = (other_fusion, other_weights, other_smoothing) if twin else (None, None, given)
            metrics, fusion, _, _ = _convert_and_score(
                runs, dataset_path, precision, staging / "bundle", Path(tmp), log, fusion, search_weights=weights, smoothing=smoothing,
                library_field=library_field,
            )
        with_metrics(load_bundle(staging / "bundle"), metrics, other_metrics, fusion)
        if out.exists():
            out.rename(staging / "replaced")
        (staging / "bundle").rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_bundle(out).manifest
