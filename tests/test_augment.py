"""Physical augmentation: each perturbation keeps the device's input format and really changes the spectrum;
only training spectra are ever augmented; the field degradation is fixed by its seed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ramancore.preprocessing import GRID, GRID_SIZE, preprocess
from trainer.augment import Augmentation, augment_batch, field_degrade, measured_range, perturb

#: Every perturbation off: the starting point for switching one on at a time.
NOTHING = Augmentation(
    offset_cm1=0, stretch=0, broadening_cm1=0, band_gain=0, baseline=0, noise_snr_min=0,
    range_probability=0, spike_probability=0, mix_probability=0,
)
ONE_AT_A_TIME = {
    "offset": {"offset_cm1": 5.0},
    "stretch": {"stretch": 0.01},
    "broadening": {"broadening_cm1": 12.0},
    "band_gain": {"band_gain": 0.5},
    "baseline": {"baseline": 0.3},
    "noise": {"noise_snr_min": 10.0},
    "range": {"range_probability": 1.0},
    "spikes": {"spike_probability": 1.0},
    "mixing": {"mix_probability": 1.0},
}


def _spectrum(centres, lo=120.0, hi=1450.0, seed=0) -> np.ndarray:
    """A preprocessed spectrum with Lorentzian bands, measured over lo..hi cm^-1 only."""
    x = np.arange(lo, hi, 0.7)
    y = sum(1 / (1 + ((x - c) / 4.0) ** 2) for c in centres) + 0.01 * np.random.default_rng(seed).random(x.size)
    return preprocess(x, y)


SPECTRUM = _spectrum([464, 206, 128 + 300])
PARTNER = _spectrum([464, 800], lo=100.0, hi=1500.0, seed=1)


@pytest.mark.parametrize("name", list(ONE_AT_A_TIME))
def test_each_perturbation_keeps_the_device_format_and_changes_the_spectrum(name):
    aug = replace(NOTHING, **ONE_AT_A_TIME[name])
    rng = np.random.default_rng(3)
    changed = 0
    for _ in range(5):
        out = perturb(SPECTRUM, aug, rng, partner=PARTNER)
        assert out.shape == (GRID_SIZE,) and out.dtype == np.float32
        lo, hi = measured_range(out)
        assert 0.0 <= out.min() and out.max() <= 1.0 + 1e-6
        assert out[lo:hi + 1].max() > 0.9  # min-max on the measured part, then resampled, as on the device
        assert np.all(out[:lo] == 0) and np.all(out[hi + 1:] == 0)  # zeros outside, as the preprocessing makes them
        # the measured range never grows beyond the original's (+ the largest axis shift)
        o_lo, o_hi = measured_range(SPECTRUM)
        assert lo >= o_lo - 6 and hi <= o_hi + 15
        changed += float(np.abs(out - SPECTRUM).max()) > 0.01
    assert changed >= 4, f"{name} left the spectrum unchanged"


def test_everything_off_is_the_identity():
    out = perturb(SPECTRUM, NOTHING, np.random.default_rng(0), partner=PARTNER)
    np.testing.assert_allclose(out, SPECTRUM, atol=0.01)  # only the re-normalisation of resampled points moves


def test_without_switches_off_exactly_one():
    full = Augmentation()
    for name in Augmentation.NAMES:
        off = full.without(name)
        differing = [k for k, v in off.as_dict().items() if v != full.as_dict()[k]]
        assert len(differing) == 1, (name, differing)
    with pytest.raises(ValueError, match="unknown perturbation"):
        full.without("sparkle")


def test_parse_names_and_settings():
    assert Augmentation.parse("none") is None
    assert Augmentation.parse("physical") == Augmentation()
    assert Augmentation.parse("physical-no-noise").noise_snr_min == 0
    assert Augmentation.parse("physical,baseline=0.3").baseline == 0.3
    with pytest.raises(ValueError):
        Augmentation.parse("physical,sparkle=1")


def test_offset_moves_the_bands():
    aug = replace(NOTHING, offset_cm1=6.0)
    shifts = []
    rng = np.random.default_rng(1)
    for _ in range(20):
        out = perturb(SPECTRUM, aug, rng)
        shifts.append(int(np.argmax(out)) - int(np.argmax(SPECTRUM)))
    assert max(abs(s) for s in shifts) >= 3 and all(abs(s) <= 7 for s in shifts)


def test_mixing_uses_partners_of_the_same_class_only():
    X = np.stack([SPECTRUM, PARTNER, _spectrum([1000], seed=2)])
    labels = np.array([0, 0, 1])
    aug = replace(NOTHING, mix_probability=1.0, mix_min_weight=0.5)
    out = augment_batch(X, labels, aug, np.random.default_rng(0), X, labels)
    np.testing.assert_allclose(out[2], X[2], atol=0.01)  # alone in its class: nothing to mix with
    assert out[0][1000 - int(GRID[0])] < 0.05  # class 1's band never enters class 0's spectra
    assert out[0][800 - int(GRID[0])] > 0.05  # the partner's 800 cm^-1 band did


def test_field_degradation_is_fixed_by_its_seed():
    X = np.stack([SPECTRUM, PARTNER])
    a, b, c = field_degrade(X, seed=0), field_degrade(X, seed=0), field_degrade(X, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    lo, hi = measured_range(a[0])
    assert GRID[lo] >= 148 and GRID[hi] <= 1402  # the field instrument's shorter range
    assert np.abs(a - X).max() > 0.05


@pytest.mark.tensorflow
def test_only_training_spectra_are_augmented(tmp_path, monkeypatch, dataset2_npz):
    """Record what fit hands to the augmentation: training rows only; validation is scored on the raw spectra."""
    from collections import Counter

    import trainer.training as training
    from trainer.sources import load_published_npz

    full = load_published_npz(dataset2_npz)
    largest = [m for m, _ in Counter(full.mineral.tolist()).most_common(4)]
    small = full.subset(np.flatnonzero(np.isin(full.mineral, largest)))
    small.save(tmp_path / "four.npz")
    seen: list[np.ndarray] = []
    real = training.augment_batch

    def spy(X, labels, aug, rng, pool_X=None, pool_labels=None):
        seen.append(X.copy())
        seen.append(pool_X.copy())
        return real(X, labels, aug, rng, pool_X, pool_labels)

    monkeypatch.setattr(training, "augment_batch", spy)
    config = training.FitConfig(protocol="grouped", arch="resnet1d", width=0.25, epochs=1, batch_size=64, augment="physical")
    run = training.load_run(training.fit(tmp_path / "four.npz", tmp_path / "run", config, quiet=True))
    train_rows = {r.tobytes() for r in small.X[run.split.train]}
    held_out = {r.tobytes() for r in small.X[np.concatenate([run.split.val, run.split.test])]}
    assert seen and all(row.tobytes() in train_rows for batch in seen for row in batch)
    assert not held_out & train_rows  # (the check above would be void otherwise)
    assert run.config.augmentation == Augmentation().as_dict()


def test_ablation_switches_off_each_perturbation_once_and_reuses_finished_runs(tmp_path, monkeypatch):
    """trainer ablation: one run per variant (all, none, each perturbation off), finished runs not trained again."""
    import json

    import trainer.ablation as ablation
    from trainer.training import FitConfig

    trained = []

    def fake_fit(dataset, run_dir, config, quiet=False):
        trained.append(config.augment)
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text("{}")
        return run_dir

    def fake_evaluate(run_dir):
        score = 0.5 if "no" in run_dir.name else 0.6
        record = {"best_val_accuracy": score, "test": {"top1": score, "top3": 0.9}, "test_field_degraded": {"top1": score - 0.1}}
        (run_dir / "metrics.json").write_text(json.dumps(record))
        return record

    monkeypatch.setattr(ablation, "fit", fake_fit)
    monkeypatch.setattr(ablation, "evaluate", fake_evaluate)
    rows = ablation.ablation("d.npz", tmp_path, FitConfig(arch="resnet1d"))
    assert sorted(trained) == sorted(["physical", "none", *(f"physical-no-{n}" for n in Augmentation.NAMES)])
    assert len(rows) == 11 and rows["no noise"]["augment"] == "physical-no-noise"
    for augment in trained:  # every variant really switches off what its name says
        aug = Augmentation.parse(augment)
        assert (aug is None) == (augment == "none")
    again = ablation.ablation("d.npz", tmp_path, FitConfig(arch="resnet1d"))
    assert len(trained) == 11 and again == rows  # nothing trained twice


def test_warp_moves_bands_by_different_amounts_and_keeps_the_axis_increasing():
    from trainer.augment import warp_axis

    x = np.arange(100.0, 1500.0)
    moved = []
    for seed in range(20):
        warped = warp_axis(x, 6.0, 200.0, np.random.default_rng(seed))
        assert np.all(np.diff(warped) > 0)
        shift = warped - x
        moved.append(abs(shift[364] - shift[986]))  # two bands 622 cm^-1 apart
    assert np.median(moved) > 1.0  # not one global shift
    assert Augmentation.parse("physical,warp_cm1=4").warp_cm1 == 4.0 and Augmentation().warp_cm1 == 0.0


def test_smoothing_gives_the_network_inputs_a_bundle_that_smooths_would_give_it():
    """With ``smooth_cm1``, some copies are smoothed as the device smooths a model input (the same function, the
    window drawn per spectrum); off by default."""
    from ramancore.preprocessing import smooth_measured_span

    noisy = SPECTRUM + np.where(SPECTRUM > 0, 0.05 * np.random.default_rng(0).standard_normal(GRID_SIZE), 0).astype(np.float32)
    roughness = lambda v: float(np.sum(np.diff(v[measured_range(v)[0] : measured_range(v)[1] + 1], 2) ** 2))  # noqa: E731
    rng = np.random.default_rng(1)
    outs = [perturb(noisy, replace(NOTHING, smooth_cm1=31.0), rng) for _ in range(8)]
    assert sum(roughness(out) < 0.5 * roughness(noisy) for out in outs) >= 5
    assert all(out.shape == (GRID_SIZE,) and out.dtype == np.float32 for out in outs)
    # the last draw is the window: the copy is exactly the device's smoothed input of the unsmoothed copy
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    out = perturb(SPECTRUM, replace(NOTHING, smooth_cm1=31.0), rng_a)
    plain = perturb(SPECTRUM, NOTHING, rng_b)
    window = rng_b.uniform(0, 31.0)
    assert window > 5 and not np.allclose(out, plain, atol=1e-3)
    np.testing.assert_allclose(out, smooth_measured_span(plain, window), atol=1e-6)
    assert Augmentation().smooth_cm1 == 0.0 and Augmentation.parse("physical,smooth_cm1=31").smooth_cm1 == 31.0
