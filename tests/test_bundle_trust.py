"""`ramanedge info` and the README say how often 'identified' was right, from the figures the bundle records."""

from __future__ import annotations

from edge.bundle import Manifest


def test_trust_sentences_come_from_the_held_out_figures_of_the_manifest():
    fused = {"top1": 0.83, "top3": 0.95, "identified": {"coverage": 0.6, "precision": 0.96}}
    fair = {"spectra": 140, "fused_top1": 0.8, "fused_top3": 0.9, "identified_coverage": 0.5, "identified_precision": 0.95}
    grouped = {"protocol": "grouped", "test_spectra": 2500, "answers": {"fused": fused}, "grouped_fair": {"test": {"fair_processed": fair}}}
    gate = {"test": {"unknown_identified": 0.015, "precision": 0.955, "coverage": 0.52}}
    manifest = Manifest(
        precision="int8", n_classes=2, grid_cm1={}, preprocessing="", input={}, output={}, training={}, files={},
        metrics={"protocol": "all"}, metrics_other_protocol=grouped, calibration={"fitted": {"evidence_gate": gate}},
    )
    new, field, unknown = manifest.trust_sentences()
    assert "(2500 held out): named first 83 %" in new and "'identified' on 60 %" in new and "right on 96 %" in new
    assert "(140 RRUFF files): named first 80 %" in field and "right on 95 %" in field
    assert "'identified' on 1.5 % of their spectra" in unknown and "right 95.5 % of the time at 52 % coverage" in unknown
    assert Manifest(precision="int8", n_classes=2, grid_cm1={}, preprocessing="", input={}, output={}, training={}, files={}).trust_sentences() == []
