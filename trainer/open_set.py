"""``trainer openset``: how often *identified* is right on new specimens of known minerals, and how
often it fires on minerals the model does not know; the gate that keeps both promises.

Data flow: a run trained on the open-set split (``trainer fit --split open``,
:func:`trainer.splits.open_split`: a seeded fifth of the minerals held out as *unknown*, the rest
split by specimen) -> :func:`open_set_report`: every spectrum of four parts answered through the
device's path (:meth:`edge.library.Matcher.match`, the run's training library, a fusion fitted on
its validation part), with the evidence of each answer:

============  ===============================================================================
known fit     the validation specimens' spectra, and the fair/poor files of those specimens
known test    the test specimens' spectra, and the fair/poor files of those specimens
unknown fit   spectra (and fair/poor files) of half the unknown minerals
unknown test  spectra (and fair/poor files) of the other half: minerals no fitting step saw
============  ===============================================================================

Each candidate gate (a score per answer and a threshold) is fitted on the fit parts, so that
*identified* answers are right >= 95 % of the time on known fit while <= 2 % of unknown fit is
identified, and reported once on the test parts (precision, coverage, unknown rate, and the
risk-coverage curve). The evidence gate (:class:`edge.answer.EvidenceGate`, a logistic score of
everything the device knows of the answer) is what ``trainer export --evidence-gate`` ships.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from edge.answer import EVIDENCE, EvidenceGate, gate_features
from edge.library import Matcher, ReferenceLibrary
from trainer import plots
from trainer.errors import TrainerError
from trainer.field_set import FieldSet, default_path, load_field_set, validation_fusion
from trainer.groups import derive_groups
from trainer.splits import open_set_minerals

if TYPE_CHECKING:  # typing only: importing them would pull Keras into `trainer --help`
    from trainer.dataset import SpectraDataset
    from trainer.training import Run

OPEN_SET = "open_set.json"
#: Every answer of an open-set run's four parts (Answers' arrays, with each spectrum's mineral and specimen), for a
#: gate pooled over several runs (:func:`pooled_gate_report`).
OPEN_SET_ANSWERS = "open_set_answers.npz"
RISK_COVERAGE = "risk_coverage.png"
#: What *identified* must keep on the known fit part, and the most of the unknown fit part it may let through.
TARGET_PRECISION = 0.95
MAX_UNKNOWN_IDENTIFIED = 0.02


class OpenSetError(TrainerError):
    """A run that cannot be scored on the open-set protocol; one line saying why."""


@dataclass(frozen=True)
class Answers:
    """One part's answers: ``features`` (n, len(EVIDENCE)) the gate's inputs, ``evidence`` the raw values,
    ``confidence`` and ``best_hqi`` (n,), ``correct`` (n,) bool: the answer holds the true mineral (named, or a
    member of the Raman-indistinguishable group answered: what the device tells the user; always False for
    unknown minerals), ``species_correct`` (n,) bool: the first mineral named is the true one, ``fair`` (n,) bool:
    from the fair/poor set, ``named`` (n,) the matcher's candidate index of the first mineral named."""

    features: np.ndarray
    evidence: np.ndarray
    confidence: np.ndarray
    best_hqi: np.ndarray
    correct: np.ndarray
    fair: np.ndarray
    species_correct: np.ndarray
    named: np.ndarray

    def __len__(self) -> int:
        return len(self.correct)


def answer_part(matcher: Matcher, probabilities: np.ndarray, spectra: np.ndarray, y: np.ndarray, fair: np.ndarray) -> Answers:
    """Answer each spectrum as the device does (group answers included, where ``matcher`` has groups); ``y`` the
    true candidate index, -1 for an unknown mineral."""
    rows, evidence, confidence, best_hqi, correct, species, first = [], [], [], [], [], [], []
    names = {m: i for i, m in enumerate(matcher.candidates)}
    for proba, spectrum, truth in zip(probabilities, spectra, y):
        match = matcher.match(proba, spectrum, k=1)
        rows.append(gate_features(match.evidence))
        evidence.append([match.evidence[k] for k in EVIDENCE])
        confidence.append(match.stated_confidence)
        best_hqi.append(match.best_hqi)
        named = [match.top[0][0]] if match.group is None else match.group
        first.append(names[match.top[0][0]])
        species.append(truth >= 0 and names[match.top[0][0]] == truth)
        correct.append(truth >= 0 and truth in {names[m] for m in named})
    width = len(EVIDENCE)
    return Answers(
        np.array(rows).reshape(-1, width), np.array(evidence).reshape(-1, width), np.array(confidence), np.array(best_hqi),
        np.array(correct, dtype=bool), np.asarray(fair, dtype=bool), np.array(species, dtype=bool), np.array(first, dtype=np.int64),
    )


def fit_threshold(known: np.ndarray, correct: np.ndarray, unknown: np.ndarray) -> float:
    """The lowest threshold t (widest coverage) with answers scoring >= t right >= TARGET_PRECISION of the
    time on known spectra and at most MAX_UNKNOWN_IDENTIFIED of unknown spectra scoring >= t; inf if none."""
    for t in np.unique(np.concatenate([known, unknown])):
        chosen = known >= t
        if chosen.any() and np.mean(correct[chosen]) >= TARGET_PRECISION and np.mean(unknown >= t) <= MAX_UNKNOWN_IDENTIFIED:
            return float(t)
    return float("inf")


def fit_logistic(known: np.ndarray, correct: np.ndarray, unknown: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights, bias) on the raw features of a logistic score: right answers of known minerals (``known`` (n, f),
    ``correct`` (n,)) against wrong ones and every unknown mineral's (``unknown`` (u, f), weighted to count as much
    as the known ones). Fitted on standardised features, returned for raw ones: the device standardises nothing."""
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate([known, unknown])
    target = np.concatenate([correct, np.zeros(len(unknown), bool)])
    weight = np.concatenate([np.ones(len(known)), np.full(len(unknown), len(known) / max(len(unknown), 1))])
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=2000).fit((X - mean) / scale, target, sample_weight=weight)
    return model.coef_[0] / scale, float(model.intercept_[0] - np.dot(model.coef_[0], mean / scale))


def fit_evidence_gate(known: Answers, unknown: Answers) -> EvidenceGate:
    """A logistic score of the answers' evidence (:func:`fit_logistic`); its threshold by :func:`fit_threshold`."""
    weights, bias = fit_logistic(known.features, known.correct, unknown.features)
    gate = EvidenceGate(tuple(float(w) for w in weights), bias, 0.0)
    threshold = fit_threshold(_scores(gate, known), known.correct, _scores(gate, unknown))
    return EvidenceGate(gate.weights, gate.bias, threshold)


def _scores(gate: EvidenceGate, answers: Answers) -> np.ndarray:
    return np.array([gate.score(dict(zip(EVIDENCE, row))) for row in answers.evidence])


def gate_figures(known_score: np.ndarray, known: Answers, unknown_score: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision and coverage of *identified* on known spectra (all, and the fair/poor files alone), and the
    share of unknown spectra identified, at ``threshold``; with the risk-coverage curve of the score."""
    chosen = known_score >= threshold

    def precision(mask: np.ndarray) -> float:
        return float(np.mean(known.correct[mask])) if mask.any() else float("nan")

    order = np.argsort(-known_score, kind="stable")
    right = np.cumsum(known.correct[order])
    steps = np.unique(np.linspace(1, len(order), 50).astype(int))
    return {
        "threshold": threshold,
        "precision": precision(chosen),
        "coverage": float(np.mean(chosen)),
        "fair_precision": precision(chosen & known.fair),
        "fair_coverage": float(np.mean(chosen[known.fair])) if known.fair.any() else float("nan"),
        "unknown_identified": float(np.mean(unknown_score >= threshold)),
        "curve": {
            "coverage": (steps / len(order)).tolist(),
            "precision": (right[steps - 1] / steps).tolist(),
            "unknown_identified": [float(np.mean(unknown_score >= known_score[order[i - 1]])) for i in steps],
        },
    }


Candidate = Callable[[Answers], np.ndarray]


class Part(NamedTuple):
    """One part of an open-set run: ``X`` (n, GRID_SIZE) spectra, ``y`` (n,) true class index (-1: an unknown
    mineral), ``fair`` (n,) bool from the fair/poor set, and each spectrum's ``mineral`` and ``specimen`` (n,) str."""

    X: np.ndarray
    y: np.ndarray
    fair: np.ndarray
    mineral: np.ndarray
    specimen: np.ndarray


def open_set_parts(run: Run, dataset: SpectraDataset, field: FieldSet | None) -> dict[str, Part]:
    """The four parts of an open-set run: ``known_fit`` (validation spectra and their specimens' fair/poor
    files), ``known_test`` (the same of the test part), ``unknown_fit`` and ``unknown_test`` (every spectrum and
    fair/poor file of the held-out minerals of each half)."""
    unknown_fit, unknown_test = open_set_minerals(dataset.mineral, run.split.seed)
    index = {m: i for i, m in enumerate(run.classes)}

    def part(rows: np.ndarray, field_rows: np.ndarray) -> Part:
        X = np.concatenate([dataset.X[rows], field.X[field_rows] if field is not None else np.zeros((0, dataset.X.shape[1]))])
        minerals = np.concatenate([dataset.mineral[rows], field.mineral[field_rows] if field is not None else np.array([], str)]).astype(str)
        specimens = np.concatenate([dataset.specimen[rows], field.specimen[field_rows] if field is not None else np.array([], str)]).astype(str)
        y = np.array([index.get(m, -1) for m in minerals], dtype=np.int64)
        return Part(X, y, np.concatenate([np.zeros(len(rows), bool), np.ones(len(X) - len(rows), bool)]), minerals, specimens)

    def field_rows_of_minerals(minerals: list[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(field.mineral, minerals)) if field is not None else np.empty(0, np.int64)

    def field_rows_of_specimens(rows: np.ndarray) -> np.ndarray:
        return field.rows_of(dataset.specimen[rows], run.classes) if field is not None else np.empty(0, np.int64)

    return {
        "known_fit": part(run.split.val, field_rows_of_specimens(run.split.val)),
        "known_test": part(run.split.test, field_rows_of_specimens(run.split.test)),
        "unknown_fit": part(np.flatnonzero(np.isin(dataset.mineral, unknown_fit)), field_rows_of_minerals(unknown_fit)),
        "unknown_test": part(np.flatnonzero(np.isin(dataset.mineral, unknown_test)), field_rows_of_minerals(unknown_test)),
    }


def open_set_report(
    run_dir: str | Path,
    field_set: str | Path | FieldSet | None = None,
    dataset_path: str | Path | None = None,
    smoothing_cm1: float = 0.0,
    library_field: bool = False,
    members: list[str | Path] | None = None,
) -> dict[str, Any]:
    """Fit the candidate gates on the fit parts of an open-set run and report them on its test parts;
    writes ``open_set.json`` (figures, curves and the evidence gate) into the run folder. ``smoothing_cm1``: the
    model input smoothing of the bundle the gate will ship in (cm^-1, 0: none), so that the gate sees its answers;
    ``library_field``: that bundle's library holds the fair/poor processed files of its training specimens
    (``trainer export --library-field-files``), so this run's library holds those of its own. ``members``: further
    runs of the same open-set split, averaged with it as an ensemble bundle averages (each with its own embedding
    search); the files then go into the run folder as ``open_set+MEMBER.json`` and alike (:func:`report_names`)."""
    import keras  # noqa: F401  (the run's model is a Keras one; imported here so `trainer --help` stays light)

    from trainer.export import reference_library
    from trainer.training import check_one_split, load_run

    run = load_run(run_dir)
    others = [load_run(m) for m in members or []]
    for member in (run, *others):
        if member.split.protocol != "open":
            raise OpenSetError(f"{member.path}: trained on the {member.split.protocol} split; the open-set report needs `trainer fit --split open`")
    check_one_split([run, *others])
    dataset = run.load_dataset(dataset_path)
    if field_set is None:
        field_set = default_path()
    field = field_set if isinstance(field_set, FieldSet) or field_set is None else load_field_set(field_set)
    if library_field and field is None:
        raise OpenSetError(f"{run.path}: --library-field-files needs the fair/poor set; none found")
    library = reference_library(dataset, run.split.train, field if library_field else None)
    member_predicts, search = member_searches([run, *others], dataset, field, smoothing_cm1, library)

    def predict(X: np.ndarray) -> np.ndarray:
        return np.mean([member_predict(X) for member_predict in member_predicts], axis=0)

    matcher, groups = device_matcher(run, dataset, library, field, predict)
    unknown_fit, unknown_test = open_set_minerals(dataset.mineral, run.split.seed)
    raw_parts = open_set_parts(run, dataset, field)
    parts = {name: answer_part(matcher, predict(p.X), p.X, p.y, p.fair) for name, p in raw_parts.items()}
    names = report_names([m.path.name for m in others])
    save_answers(run.path / names[OPEN_SET_ANSWERS], parts, raw_parts, run.split.seed)
    gate = fit_evidence_gate(parts["known_fit"], parts["unknown_fit"])
    candidates: dict[str, Candidate] = {
        "fused confidence (today's gate)": lambda a: a.confidence,
        "best library HQI": lambda a: a.best_hqi,
        "evidence (logistic)": lambda a: _scores(gate, a),
    }
    report: dict[str, Any] = {
        "run": "+".join(member.path.name for member in (run, *others)),
        "members": 1 + len(others),
        "seed": run.split.seed,
        "targets": {"precision": TARGET_PRECISION, "max_unknown_identified": MAX_UNKNOWN_IDENTIFIED},
        "spectra": {name: {"all": len(a), "fair_poor_files": int(a.fair.sum())} for name, a in parts.items()},
        "unknown_minerals": {"fit": len(unknown_fit), "test": len(unknown_test)},
        "known_test_top1": float(np.mean(parts["known_test"].species_correct)),
        "known_test_group_top1": float(np.mean(parts["known_test"].correct)),
        "groups": len(groups),
        "embedding_search": search,
        "library_field_files": len(library) - len(run.split.train),
        # the fusion the answers were given with: a bundle must weigh its library the same way for the gate to hold
        "fusion_noise_decay": matcher.calibration.library_noise_decay,
        "gates": {},
        "evidence_gate": gate.as_dict(),
    }
    for name, score in candidates.items():
        threshold = gate.threshold if name.startswith("evidence") else fit_threshold(
            score(parts["known_fit"]), parts["known_fit"].correct, score(parts["unknown_fit"])
        )
        report["gates"][name] = {
            "fit": {k: v for k, v in gate_figures(score(parts["known_fit"]), parts["known_fit"], score(parts["unknown_fit"]), threshold).items() if k != "curve"},
            "test": gate_figures(score(parts["known_test"]), parts["known_test"], score(parts["unknown_test"]), threshold),
        }
    (run.path / names[OPEN_SET]).write_text(json.dumps(report, indent=2))
    plots.risk_coverage(
        {name: figures["test"]["curve"] for name, figures in report["gates"].items()}, run.path / names[RISK_COVERAGE],
        f"{run.path.name}: open-set test parts (thresholds fitted on the fit parts)",
    )
    return report


def member_searches(
    runs: list[Run], dataset: SpectraDataset, field: FieldSet | None, smoothing_cm1: float, library: ReferenceLibrary
) -> tuple[list[Callable[[np.ndarray], np.ndarray]], dict[str, Any]]:
    """Each run's ``predict`` ((n, GRID_SIZE) -> (n, classes)) as the device gives its probabilities: with its own
    embedding search over ``library`` (:func:`trainer.embedding.keras_search`), smoothed by ``smoothing_cm1``; an
    ensemble averages them. And the search's record (an ensemble's with ``weights``, one per member)."""
    from trainer.embedding import keras_search

    searched = [keras_search(run, dataset, run.build_trained_model(), field, smoothing_cm1, library) for run in runs]
    record = {**searched[0][1], **({"weights": [info["weight"] for _, info in searched]} if len(runs) > 1 else {})}
    return [predict for predict, _ in searched], record


def device_matcher(
    run: Run, dataset: SpectraDataset, library: ReferenceLibrary, field: FieldSet | None, predict: Callable[[np.ndarray], np.ndarray]
) -> tuple[Matcher, list[list[str]]]:
    """The device's answering path for ``run``: the fusion as export fits it (``predict``: the model's probabilities)
    and the groups export ships (from the training spectra); with those groups."""
    groups = derive_groups(dataset.X[run.split.train], dataset.mineral[run.split.train], dataset.specimen[run.split.train])
    return Matcher(run.classes, library, validation_fusion(run, dataset, library, field, predict), groups), groups


def report_names(members: list[str]) -> dict[str, str]:
    """The names of a report's files in the run folder: :data:`OPEN_SET` and alike for the run alone, with
    ``+MEMBER...`` (the members' folder names) before the suffix for an ensemble, so that a run's own report is never
    written over."""
    tag = "".join(f"+{name}" for name in members)
    return {name: f"{Path(name).stem}{tag}{Path(name).suffix}" for name in (OPEN_SET, OPEN_SET_ANSWERS, RISK_COVERAGE)}


def save_answers(path: Path, parts: dict[str, Answers], raw: dict[str, Part], seed: int) -> None:
    """Write every part's answers and its spectra's minerals and specimens, and the split's seed (:data:`OPEN_SET_ANSWERS`)."""
    arrays: dict[str, Any] = {"seed": np.array(seed)}
    for name, answers in parts.items():
        arrays.update({f"{name}.{field}": getattr(answers, field) for field in Answers.__dataclass_fields__})
        arrays.update({f"{name}.mineral": raw[name].mineral, f"{name}.specimen": raw[name].specimen})
    np.savez_compressed(path, **arrays)


def load_answers(run_dir: str | Path) -> tuple[dict[str, Answers], dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """A run's saved answers by part, each part's (mineral, specimen) arrays, and the split's seed."""
    path = Path(run_dir) / OPEN_SET_ANSWERS
    try:
        with np.load(path) as saved:
            parts = {
                name: Answers(**{field: saved[f"{name}.{field}"] for field in Answers.__dataclass_fields__})
                for name in ("known_fit", "known_test", "unknown_fit", "unknown_test")
            }
            who = {name: (saved[f"{name}.mineral"], saved[f"{name}.specimen"]) for name in parts}
            seed = int(saved["seed"])
    except (OSError, KeyError, ValueError) as exc:
        raise OpenSetError(f"{path}: no answers of `trainer openset` for this run ({exc}); run `trainer openset {run_dir}` first") from None
    return parts, who, seed


def _subset(answers: Answers, keep: np.ndarray) -> Answers:
    return Answers(**{field: getattr(answers, field)[keep] for field in Answers.__dataclass_fields__})


def _joined(parts: list[Answers]) -> Answers:
    return Answers(**{field: np.concatenate([getattr(a, field) for a in parts]) for field in Answers.__dataclass_fields__})


Loaded = list[tuple[Path, dict[str, Answers], dict[str, tuple[np.ndarray, np.ndarray]], int]]  #: (run folder, answers, who, seed) per run


def pooled_fit_parts(loaded: Loaded, excluded_minerals: set[str], excluded_specimens: set[str]) -> tuple[Answers, Answers]:
    """The known and unknown fit parts of every run together, less the spectra of ``excluded_minerals`` and of
    ``excluded_specimens`` (those of the test part being scored)."""
    known: list[Answers] = []
    unknown: list[Answers] = []
    for _, parts, who, _ in loaded:
        for name, out in (("known_fit", known), ("unknown_fit", unknown)):
            mineral, specimen = who[name]
            keep = ~np.isin(mineral, sorted(excluded_minerals)) & ~np.isin(specimen, sorted(excluded_specimens))
            out.append(_subset(parts[name], keep))
    return _joined(known), _joined(unknown)


def _own_gate_test(run_dir: Path) -> dict[str, Any] | None:
    """The test figures of a run's own evidence gate (fitted on its fit part alone), from its ``open_set.json``."""
    try:
        figures = json.loads((run_dir / OPEN_SET).read_text())["gates"]["evidence (logistic)"]["test"]
    except (OSError, ValueError, KeyError):
        return None
    return {k: v for k, v in figures.items() if k != "curve"}


def _answered_with(run_dirs: list[Path]) -> dict[str, Any]:
    """What the runs' answers were given with (input smoothing, fair/poor files in the library, a library weight
    falling with noise), from their ``open_set.json``: one gate for all of them needs the same in every run."""
    seen, decays = [], {}
    for run_dir in run_dirs:
        try:
            report = json.loads((run_dir / OPEN_SET).read_text())
        except (OSError, ValueError) as exc:
            raise OpenSetError(f"{run_dir}: no open-set report of `trainer openset` ({exc})") from None
        decays[run_dir.name] = float(report.get("fusion_noise_decay", 0.0))
        seen.append((
            float((report.get("embedding_search") or {}).get("input_smoothing_cm1", 0.0)),
            int(report.get("library_field_files", 0)) > 0,
            noise_falling(report),
        ))
    if len(set(seen)) > 1:
        raise OpenSetError(
            "the runs' answers were given differently (input smoothing, fair/poor files in the library, noise-falling library "
            f"weight: {', '.join(f'{d.name} {s}' for d, s in zip(run_dirs, seen))}); rerun `trainer openset` on them alike"
        )
    smoothing, field_files, falling = seen[0]
    return {
        "embedding_search": {"input_smoothing_cm1": smoothing},
        "library_field_files": int(field_files),
        "fusion_noise_falling": falling,
        "fusion_noise_decays": decays,  # each run's own fitted decay (per unit of noise_level)
    }


def noise_falling(report: Mapping[str, Any]) -> bool:
    """Were an open-set report's answers fused with a library weight falling with noise? A run's report records its
    fitted decay, a pooled one whether its runs' fusions fell (each run's decay is its own)."""
    if "fusion_noise_falling" in report:
        return bool(report["fusion_noise_falling"])
    return float(report.get("fusion_noise_decay", 0.0)) > 0


def pooled_gate_report(run_dirs: list[str | Path]) -> dict[str, Any]:
    """One evidence gate fitted on the fit parts of several open-set runs (seeds) together: about three times the
    unknown minerals a single split's fit part holds, so that the 2 % promise rests on more than the few minerals
    one seed happens to hold out (single-split gates kept it on the test parts of two seeds of three).

    Each run's test part is scored with a gate fitted *without* it (cross-fitting): the pooled fit parts less every
    spectrum of a mineral that is unknown in that run's test part and of a specimen of its known test part (seeds
    hold different minerals out, so another run's fit part may hold them). The gate fitted on all the fit parts is
    the one to ship (``trainer export --evidence-gate``); its figures are the cross-fitted ones, pooled over the
    runs' test parts. Each run's answers come from ``trainer openset RUN`` (:data:`OPEN_SET_ANSWERS`)."""
    loaded: Loaded = [(Path(d), *load_answers(d)) for d in run_dirs]
    if len(loaded) < 2:
        raise OpenSetError("a pooled gate needs the answers of at least two open-set runs")
    answered_with = _answered_with([path for path, _, _, _ in loaded])

    per_run: dict[str, Any] = {}
    decided: dict[str, list[np.ndarray]] = {"known": [], "correct": [], "fair": [], "unknown": []}
    for path, parts, who, _ in loaded:
        gate = fit_evidence_gate(*pooled_fit_parts(loaded, set(who["unknown_test"][0]), set(who["known_test"][1])))
        known, unknown = _scores(gate, parts["known_test"]), _scores(gate, parts["unknown_test"])
        figures = gate_figures(known, parts["known_test"], unknown, gate.threshold)
        per_run[path.name] = {
            "pooled": {k: v for k, v in figures.items() if k != "curve"},
            "own_fit_part": _own_gate_test(path),  # the run's own gate (its fit part alone), the same test part
        }
        decided["known"].append(known >= gate.threshold)
        decided["correct"].append(parts["known_test"].correct)
        decided["fair"].append(parts["known_test"].fair)
        decided["unknown"].append(unknown >= gate.threshold)
    chosen, correct, fair, passed = (np.concatenate(decided[k]) for k in ("known", "correct", "fair", "unknown"))
    shipped = fit_evidence_gate(*pooled_fit_parts(loaded, set(), set()))
    return {
        "run": "pooled: " + ", ".join(p.name for p, _, _, _ in loaded),
        "seed": ", ".join(str(seed) for _, _, _, seed in loaded),
        "targets": {"precision": TARGET_PRECISION, "max_unknown_identified": MAX_UNKNOWN_IDENTIFIED},
        "evidence_gate": shipped.as_dict(),
        **answered_with,
        "per_run_test": per_run,
        "gates": {
            "evidence (logistic)": {
                "test": {
                    "threshold": shipped.threshold,
                    "precision": float(np.mean(correct[chosen])) if chosen.any() else float("nan"),
                    "coverage": float(np.mean(chosen)),
                    "fair_precision": float(np.mean(correct[chosen & fair])) if (chosen & fair).any() else float("nan"),
                    "fair_coverage": float(np.mean(chosen[fair])) if fair.any() else float("nan"),
                    "unknown_identified": float(np.mean(passed)),
                }
            }
        },
    }


def load_evidence_gate(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The evidence gate of an ``open_set.json`` (or of the run folder holding one), and its test figures."""
    path = Path(path)
    if path.is_dir():
        path = path / OPEN_SET
    try:
        report = json.loads(path.read_text())
        gate, figures = report["evidence_gate"], report["gates"]["evidence (logistic)"]["test"]
    except (OSError, ValueError, KeyError) as exc:
        raise OpenSetError(f"{path}: not an open-set report of `trainer openset` ({exc})") from None
    summary = {k: figures[k] for k in ("threshold", "precision", "coverage", "fair_precision", "fair_coverage", "unknown_identified")}
    # the model input smoothing the gate's answers were given with: a bundle must smooth as much for the gate to hold
    smoothing = float((report.get("embedding_search") or {}).get("input_smoothing_cm1", 0.0))
    return gate, {
        "from": f"{report['run']} (open-set seed {report['seed']})",
        "test": summary,
        "input_smoothing_cm1": smoothing,
        "library_field_files": int(report.get("library_field_files", 0)),
        "fusion_noise_falling": noise_falling(report),
        "members": int(report.get("members", 1)),
    }
