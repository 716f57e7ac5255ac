"""The open-set protocol: unknown minerals kept out of every part, and gates that keep their promises
on synthetic answers whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.answer import EVIDENCE, AnswerGate, EvidenceGate
from trainer.open_set import (
    MAX_UNKNOWN_IDENTIFIED,
    OPEN_SET_ANSWERS,
    TARGET_PRECISION,
    Answers,
    OpenSetError,
    Part,
    fit_evidence_gate,
    fit_threshold,
    gate_figures,
    load_answers,
    load_evidence_gate,
    pooled_fit_parts,
    pooled_gate_report,
)
from trainer.splits import make_split, open_set_minerals


def _dataset(n_minerals: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mineral, specimen = [], []
    for m in range(n_minerals):
        for s in range(int(rng.integers(1, 6))):  # 1 to 5 specimens, 1 to 4 spectra each
            mineral += [f"M{m:03d}"] * int(rng.integers(1, 5))
            specimen += [f"R{m:03d}{s}"] * (len(mineral) - len(specimen))
    return np.array(mineral), np.array(specimen)


def test_open_split_holds_unknown_minerals_out_of_every_part_and_no_mineral_in_two_roles():
    mineral, specimen = _dataset()
    split = make_split("open", mineral, specimen, seed=3)
    fit, test = open_set_minerals(mineral, 3)
    assert fit and test and not set(fit) & set(test)
    assert len(fit) + len(test) == round(0.2 * len(set(mineral)))
    known_rows = np.concatenate([split.train, split.val, split.test])
    assert not set(mineral[known_rows]) & (set(fit) | set(test))  # an unknown mineral is in no part
    parts = [set(specimen[rows]) for rows in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert open_set_minerals(mineral, 3) == (fit, test) and open_set_minerals(mineral, 4) != (fit, test)


def _answers(n: int, rng: np.random.Generator, known: bool) -> Answers:
    """Synthetic answers: right ones confident and agreeing with the library, wrong and unknown ones less so."""
    correct = rng.random(n) < 0.7 if known else np.zeros(n, bool)
    strength = np.where(correct, rng.normal(2.0, 1.0, n), rng.normal(-0.5, 1.0, n))
    confidence = 1.0 / (1.0 + np.exp(-strength))
    hqi = np.clip(np.where(known, 850.0, 600.0) + 80.0 * strength + rng.normal(0, 40, n), 0, 1000)
    evidence = np.column_stack([
        confidence, confidence * 0.5, confidence, confidence, hqi, hqi, np.clip(hqi - 600, 0, 400), (strength > 1.0).astype(float),
    ])
    from edge.answer import gate_features

    features = np.array([gate_features(dict(zip(EVIDENCE, row))) for row in evidence])
    return Answers(features, evidence, confidence, hqi, correct, np.zeros(n, bool), correct, np.zeros(n, np.int64))


def test_a_fitted_gate_keeps_its_precision_and_unknown_rate_on_fresh_answers():
    rng = np.random.default_rng(0)
    known_fit, unknown_fit = _answers(3000, rng, True), _answers(3000, rng, False)
    gate = fit_evidence_gate(known_fit, unknown_fit)
    assert np.isfinite(gate.threshold)
    known_test, unknown_test = _answers(3000, rng, True), _answers(3000, rng, False)

    def scores(answers: Answers) -> np.ndarray:
        return np.array([gate.score(dict(zip(EVIDENCE, row))) for row in answers.evidence])

    figures = gate_figures(scores(known_test), known_test, scores(unknown_test), gate.threshold)
    assert figures["precision"] >= TARGET_PRECISION - 0.02 and figures["unknown_identified"] <= MAX_UNKNOWN_IDENTIFIED + 0.01
    assert figures["coverage"] > 0.3  # it answers, not only refuses
    # the device's gate says "identified" exactly where the score reaches the threshold
    device = AnswerGate(confidence=0.0, evidence_gate=gate)
    row = dict(zip(EVIDENCE, known_test.evidence[0]))
    assert (device.state(0.99, 900.0, evidence=row) == "identified") == (gate.score(row) >= gate.threshold)
    assert EvidenceGate.from_dict(gate.as_dict()) == gate


def test_fit_threshold_is_the_widest_that_keeps_both_promises():
    known = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([True, True, True, True, False, True])
    unknown = np.array([0.62, 0.65, 0.66] + [0.0] * 97)  # from 0.6, 3 % of the unknowns would be identified
    assert fit_threshold(known, correct, unknown) == 0.65  # 2 of 100 unknowns from there: at the 2 % limit
    assert fit_threshold(known, correct, np.zeros(100)) == 0.6  # 0.5 would take a wrong answer (4 of 5 right < 95 %)
    assert fit_threshold(known, np.zeros(6, bool), unknown) == float("inf")  # nothing ever right: never identified


def _saved_run(folder, seed: int, rng: np.random.Generator, unknown_test: list[str], unknown_fit: list[str], smoothing: float = 21.0):
    """A fake open-set run folder holding its saved answers (trainer openset's open_set_answers.npz) and what its
    open_set.json says they were answered with."""
    from trainer.open_set import OPEN_SET, save_answers

    folder.mkdir()
    (folder / OPEN_SET).write_text(json.dumps({"embedding_search": {"input_smoothing_cm1": smoothing}, "fusion_noise_decay": 150.0}))
    parts, raw = {}, {}
    for name, known, minerals in (
        ("known_fit", True, [f"K{seed}{i % 40:02d}" for i in range(800)]),
        ("known_test", True, [f"T{seed}{i % 40:02d}" for i in range(800)]),
        ("unknown_fit", False, [unknown_fit[i % len(unknown_fit)] for i in range(800)]),
        ("unknown_test", False, [unknown_test[i % len(unknown_test)] for i in range(800)]),
    ):
        parts[name] = _answers(800, rng, known)
        minerals = np.array(minerals)
        raw[name] = Part(np.zeros((800, 1)), np.zeros(800, np.int64), parts[name].fair, minerals, np.char.add(minerals, "-s"))
    save_answers(folder / OPEN_SET_ANSWERS, parts, raw, seed)
    return folder


def test_pooled_fit_parts_leave_out_the_scored_test_parts_minerals_and_specimens(tmp_path):
    """Seeds hold different minerals out: another run's fit part may hold the minerals (or specimens) of the test part
    being scored, and the gate that scores it must not have seen them."""
    rng = np.random.default_rng(1)
    a = _saved_run(tmp_path / "a", 0, rng, unknown_test=["U1", "U2"], unknown_fit=["U3", "U4"])
    b = _saved_run(tmp_path / "b", 1, rng, unknown_test=["U3", "U5"], unknown_fit=["U1", "U6"])
    loaded = [(p, *load_answers(p)) for p in (a, b)]
    everything = pooled_fit_parts(loaded, set(), set())
    assert len(everything[0]) == 1600 and len(everything[1]) == 1600
    known, unknown = pooled_fit_parts(loaded, {"U1", "U2"}, {"K100-s"})  # run a's test minerals; one specimen
    assert len(unknown) == 1600 - 400  # run b's U1 spectra (half its unknown fit part) leave
    assert len(known) == 1600 - 20  # the 20 spectra of specimen K100-s leave


def test_pooled_gate_keeps_its_promises_on_each_test_part_and_is_read_by_export(tmp_path):
    rng = np.random.default_rng(2)
    runs = [_saved_run(tmp_path / f"r{s}", s, rng, unknown_test=[f"U{s}a"], unknown_fit=[f"U{s}b"]) for s in range(3)]
    report = pooled_gate_report(runs)
    test = report["gates"]["evidence (logistic)"]["test"]
    assert test["precision"] >= TARGET_PRECISION - 0.02 and test["unknown_identified"] <= MAX_UNKNOWN_IDENTIFIED + 0.01
    assert test["coverage"] > 0.3 and set(report["per_run_test"]) == {"r0", "r1", "r2"}
    assert report["per_run_test"]["r0"]["own_fit_part"] is None  # these fake runs have no open_set.json of their own
    path = tmp_path / "pooled.json"
    path.write_text(json.dumps(report))
    gate, figures = load_evidence_gate(path)
    assert EvidenceGate.from_dict(gate).threshold == report["evidence_gate"]["threshold"] and "seed 0, 1, 2" in figures["from"]
    # the pooled gate says what its answers were given with, as a single run's does: export holds a bundle to it
    assert figures["input_smoothing_cm1"] == 21.0 and figures["fusion_noise_falling"] is True
    assert report["fusion_noise_decays"] == {"r0": 150.0, "r1": 150.0, "r2": 150.0}  # each run's own, not a flag
    odd = _saved_run(tmp_path / "odd", 3, rng, unknown_test=["U3a"], unknown_fit=["U3b"], smoothing=0.0)
    with pytest.raises(OpenSetError, match="answers were given differently"):
        pooled_gate_report([*runs, odd])


def test_export_joins_a_gate_only_to_the_fusion_it_was_fitted_on():
    from edge.library import Calibration
    from trainer.export import ExportError, with_evidence_gate

    gate = ({"weights": [1.0], "bias": 0.0, "threshold": 0.9}, {"from": "open-c (open-set seed 0)", "fusion_noise_falling": True})
    falling = Calibration(library_weight=3.0, library_noise_decay=150.0)
    assert with_evidence_gate(falling, gate).evidence_gate == gate[0]
    with pytest.raises(ExportError, match="fitted on answers fused with a library weight falling with noise"):
        with_evidence_gate(Calibration(library_weight=3.0), gate)
    older = (gate[0], {"from": "open-c (open-set seed 0)"})  # a report written before the noise-falling weight
    from trainer.open_set import noise_falling

    assert noise_falling({"fusion_noise_decay": 150.0}) and not noise_falling({}) and not noise_falling({"fusion_noise_falling": False})
    with pytest.raises(ExportError, match="fused without"):
        with_evidence_gate(falling, older)
