"""Physical augmentation of preprocessed spectra, and the fixed "field" degradation used to judge models.

RRUFF's spectra come from lab instruments; a field spectrometer sees the same mineral through a
different instrument and specimen. Each perturbation below imitates one such difference, with
its parameter in physical units (cm^-1 on the Raman-shift axis; intensities relative to the
spectrum's own 0..1 range):

=================  ==========================================================================
offset / stretch   wavenumber calibration differs between instruments
warp               band positions move individually between specimens (solid solutions): a smooth
                   local shift of the axis, off unless asked for
broadening         a portable spectrometer resolves 7-12 cm^-1; RRUFF's instruments far finer
band gain          crystal orientation and laser wavelength change relative peak heights
baseline           fluorescence left over after baseline removal
noise              shot and read noise at a lower signal-to-noise ratio
range              a shorter measured range (edge filter, detector length): zeros outside
spikes             cosmic rays the spike filter missed
mixing             two spectra of the same mineral (two grains, two orientations) in one spot
smoothing          a bundle may smooth what its network sees (``smooth_measured_span``): the
                   network then meets smoothed inputs; off unless asked for
=================  ==========================================================================

Data flow: a preprocessed spectrum (model grid, zeros outside its measured range) -> its measured
points -> the perturbations, in the order above but mixing first -> the device's own
``ramancore.preprocessing.preprocess`` (min-max on the measured points, resampling, zero fill), so an
augmented spectrum is exactly what the device would make of such a measurement (then, if asked, smoothed
as a bundle's model input is).
:func:`augment_batch` draws fresh perturbations for every call (every epoch sees new copies);
only training spectra ever pass through it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ramancore.preprocessing import GRID, PreprocessingError, preprocess, smooth_measured_span
from trainer.errors import ConfigError

#: FWHM of a Gaussian = this many standard deviations.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: The shortest measured range a cropped spectrum keeps (cm^-1).
MIN_SPAN_CM1 = 500.0


@dataclass(frozen=True)
class Augmentation:
    """Strength of each perturbation; 0 (or probability 0) switches it off.

    Every parameter is drawn uniformly in [0, value] (or [-value, value] for signed ones) per
    spectrum unless said otherwise.
    """

    offset_cm1: float = 3.0  #: shift of the whole axis, cm^-1 (signed)
    stretch: float = 0.004  #: relative axis stretch about 800 cm^-1 (signed), 0.004 = 3 cm^-1 at 1550
    broadening_cm1: float = 10.0  #: extra Gaussian FWHM, cm^-1
    band_gain: float = 0.35  #: standard deviation of the log-gain, a smooth curve over the spectrum
    band_gain_period_cm1: float = 250.0  #: shortest period of that curve, cm^-1
    baseline: float = 0.15  #: height of a smooth residual baseline, fraction of the spectrum's range
    noise_snr_min: float = 15.0  #: lowest signal-to-noise ratio (peak height / noise sigma); log-uniform up to 500
    range_probability: float = 0.3  #: chance that a spectrum is cropped
    range_low_cm1: float = 200.0  #: the low end may move up by up to this much, cm^-1
    range_high_cm1: float = 500.0  #: the high end may move down by up to this much, cm^-1
    spike_probability: float = 0.1  #: chance of 1-3 residual spikes
    mix_probability: float = 0.3  #: chance of mixing with another spectrum of the same class
    mix_min_weight: float = 0.5  #: the spectrum's own weight is drawn in [this, 1]
    warp_cm1: float = 0.0  #: standard deviation of a smooth local axis shift, cm^-1 (scaled by U[0, 1]); 0: off
    warp_period_cm1: float = 200.0  #: shortest period of that shift curve, cm^-1: bands this far apart move apart
    smooth_cm1: float = 0.0  #: Savitzky-Golay window of the model input (order 2) drawn in [0, this], cm^-1; 0: off

    NAMES = ("offset", "stretch", "broadening", "band_gain", "baseline", "noise", "range", "spikes", "mixing")

    def without(self, name: str) -> Augmentation:
        """This augmentation with one named perturbation switched off (for the ablation)."""
        off = {
            "offset": {"offset_cm1": 0.0},
            "stretch": {"stretch": 0.0},
            "broadening": {"broadening_cm1": 0.0},
            "band_gain": {"band_gain": 0.0},
            "baseline": {"baseline": 0.0},
            "noise": {"noise_snr_min": 0.0},
            "range": {"range_probability": 0.0},
            "spikes": {"spike_probability": 0.0},
            "mixing": {"mix_probability": 0.0},
        }
        if name not in off:
            raise ConfigError(f"unknown perturbation {name!r}; choose one of {', '.join(self.NAMES)}")
        return replace(self, **off[name])

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def parse(cls, spec: str) -> Augmentation | None:
        """``none``, ``physical`` (the defaults), ``physical-no-NAME`` or ``physical,key=value,...``."""
        spec = spec.strip()
        if spec in ("", "none", "off"):
            return None
        head, *settings = [part.strip() for part in spec.split(",")]
        aug = cls()
        if head.startswith("physical-no-"):
            aug = aug.without(head.removeprefix("physical-no-"))
        elif head != "physical":
            raise ConfigError(f"unknown augmentation {spec!r}: use none, physical, physical-no-NAME or physical,key=value")
        known = {f.name for f in fields(cls)}
        for setting in settings:
            key, _, value = setting.partition("=")
            if key not in known or not value:
                raise ConfigError(f"augmentation setting {setting!r}: use one of {', '.join(sorted(known))} as key=value")
            aug = replace(aug, **{key: float(value)})
        return aug


def measured_range(spectrum: np.ndarray) -> tuple[int, int]:
    """First and last grid index of the measured part (the preprocessing fills zeros outside it)."""
    nonzero = np.flatnonzero(spectrum)
    if nonzero.size < 2:
        raise PreprocessingError("spectrum has fewer than two measured points")
    return int(nonzero[0]), int(nonzero[-1])


def _smooth_curve(x: np.ndarray, period_cm1: float, rng: np.random.Generator, terms: int = 4) -> np.ndarray:
    """A random smooth curve of unit standard deviation: a few cosines no shorter than ``period_cm1``."""
    span = max(float(x[-1] - x[0]), period_cm1)
    periods = rng.uniform(period_cm1, 4 * span, terms)
    phases = rng.uniform(0, 2 * np.pi, terms)
    curve = np.cos(2 * np.pi * (x[:, None] - x[0]) / periods + phases).sum(axis=1)
    return curve / np.sqrt(terms / 2)


def band_gain(x: np.ndarray, y: np.ndarray, sd: float, period_cm1: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply by exp(sd * smooth curve): band heights change relative to each other, peaks stay put."""
    return y * np.exp(sd * _smooth_curve(x, period_cm1, rng))


def warp_axis(x: np.ndarray, sd_cm1: float, period_cm1: float, rng: np.random.Generator) -> np.ndarray:
    """Shift the axis by ``sd_cm1`` times a smooth curve: bands ``period_cm1`` apart move by different
    amounts, as between two specimens of a solid solution. An axis the curve would fold (not strictly
    increasing) is returned unchanged."""
    warped = x + sd_cm1 * _smooth_curve(x, period_cm1, rng)
    return warped if np.all(np.diff(warped) > 0) else x


def broaden(y: np.ndarray, fwhm_cm1: float) -> np.ndarray:
    """Convolve with a Gaussian of ``fwhm_cm1`` (the grid has 1 point per cm^-1)."""
    return gaussian_filter1d(y, fwhm_cm1 / FWHM_PER_SIGMA, mode="nearest") if fwhm_cm1 > 0.5 else y


def add_baseline(x: np.ndarray, y: np.ndarray, height: float, rng: np.random.Generator) -> np.ndarray:
    """Add a smooth curve (periods >= 600 cm^-1) rising to ``height`` times the spectrum's range."""
    curve = _smooth_curve(x, 600.0, rng, terms=2)
    return y + height * np.ptp(y) * (curve - curve.min()) / (np.ptp(curve) or 1.0)


def add_noise(y: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise of sigma = range / ``snr``."""
    return y + rng.normal(0, (np.ptp(y) or 1.0) / snr, y.size)


def add_spikes(y: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` one-point spikes of 0.2..1 times the range at random places."""
    y = y.copy()
    y[rng.integers(0, y.size, count)] += rng.uniform(0.2, 1.0, count) * (np.ptp(y) or 1.0)
    return y


def crop(x: np.ndarray, y: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points measured within [low, high] cm^-1."""
    keep = (x >= low) & (x <= high)
    return x[keep], y[keep]


def mix(spectrum: np.ndarray, partner: np.ndarray, weight: float) -> np.ndarray:
    """``weight`` * spectrum + (1 - weight) * partner, where both were measured (zeros elsewhere)."""
    lo_a, hi_a = measured_range(spectrum)
    lo_b, hi_b = measured_range(partner)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    if hi - lo < MIN_SPAN_CM1:
        return spectrum
    mixed = np.zeros_like(spectrum)
    mixed[lo : hi + 1] = weight * spectrum[lo : hi + 1] + (1 - weight) * partner[lo : hi + 1]
    return mixed


def _measured(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = measured_range(spectrum)
    return GRID[lo : hi + 1].copy(), spectrum[lo : hi + 1].astype(np.float64)


def _to_grid(x: np.ndarray, y: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The device's preprocessing; an axis pushed off the grid or a flattened copy keeps the original."""
    try:
        return preprocess(x, y) if x.size >= 2 else fallback.astype(np.float32)
    except PreprocessingError:
        return fallback.astype(np.float32)


def perturb(
    spectrum: np.ndarray,
    aug: Augmentation,
    rng: np.random.Generator,
    partner: np.ndarray | None = None,
) -> np.ndarray:
    """One perturbed copy of a preprocessed spectrum, preprocessed again as the device would.

    ``spectrum``, ``partner`` (another spectrum of the same class, for mixing): (GRID_SIZE,) float32.
    Returns (GRID_SIZE,) float32 on the grid, 0..1 on the measured part, zeros outside it.
    """
    original = spectrum
    if partner is not None and aug.mix_probability and rng.random() < aug.mix_probability:
        spectrum = mix(spectrum, partner, rng.uniform(aug.mix_min_weight, 1.0))
    x, y = _measured(spectrum)
    if aug.band_gain:
        y = band_gain(x, y, aug.band_gain * rng.uniform(0, 1), aug.band_gain_period_cm1, rng)
    if aug.broadening_cm1:
        y = broaden(y, rng.uniform(0, aug.broadening_cm1))
    if aug.baseline:
        y = add_baseline(x, y, rng.uniform(0, aug.baseline), rng)
    if aug.noise_snr_min:
        y = add_noise(y, np.exp(rng.uniform(np.log(aug.noise_snr_min), np.log(500.0))), rng)
    if aug.spike_probability and rng.random() < aug.spike_probability:
        y = add_spikes(y, int(rng.integers(1, 4)), rng)
    if aug.warp_cm1:
        x = warp_axis(x, aug.warp_cm1 * rng.uniform(0, 1), aug.warp_period_cm1, rng)
    x = x + rng.uniform(-aug.offset_cm1, aug.offset_cm1) + rng.uniform(-aug.stretch, aug.stretch) * (x - 800.0)
    if aug.range_probability and rng.random() < aug.range_probability:
        low, high = x[0] + rng.uniform(0, aug.range_low_cm1), x[-1] - rng.uniform(0, aug.range_high_cm1)
        if high - low >= MIN_SPAN_CM1:
            x, y = crop(x, y, low, high)
    out = _to_grid(x, y, original)
    if aug.smooth_cm1:  # a window of 3 points or fewer leaves it as it is
        out = smooth_measured_span(out, rng.uniform(0, aug.smooth_cm1))
    return out


def augment_batch(
    X: np.ndarray,
    labels: np.ndarray,
    aug: Augmentation,
    rng: np.random.Generator,
    pool_X: np.ndarray | None = None,
    pool_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Fresh perturbed copies of a batch. ``X``: (n, GRID_SIZE); ``labels``: (n,) int.

    Mixing partners are drawn from ``pool_X``/``pool_labels`` (the training spectra, never
    validation or test), with the same label.
    """
    out = np.empty_like(X, dtype=np.float32)
    for i, (spectrum, label) in enumerate(zip(X, labels)):
        partner = None
        if pool_X is not None and pool_labels is not None:
            same = np.flatnonzero(pool_labels == label)
            if same.size > 1:
                partner = pool_X[rng.choice(same)]
        out[i] = perturb(spectrum, aug, rng, partner)
    return out


#: How a field measurement differs from RRUFF's, fixed, for judging models (never for training).
FIELD_FWHM_CM1 = 10.0  #: a portable instrument's resolution
FIELD_OFFSET_CM1 = 2.0  #: calibration error, drawn in +-this
FIELD_BAND_GAIN = 0.3  #: log-gain standard deviation of the band-height curve
FIELD_BASELINE = 0.15  #: residual baseline up to this fraction of the range
FIELD_SNR = 20.0  #: peak height / noise sigma
FIELD_RANGE_CM1 = (150.0, 1400.0)  #: what a compact 785 nm instrument with an edge filter keeps


def field_degrade(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """Test spectra as a field spectrometer would measure them (deterministic for a seed).

    Each spectrum gets a band-gain curve, Gaussian broadening to 10 cm^-1 FWHM, a residual
    baseline, noise at SNR 20, a calibration offset, and only 150..1400 cm^-1 kept; then the
    device's preprocessing. ``X``: (n, GRID_SIZE) preprocessed spectra; returns the same shape.
    """
    rng = np.random.default_rng(seed)
    out = np.empty_like(X, dtype=np.float32)
    for i, spectrum in enumerate(X):
        x, y = _measured(spectrum)
        y = band_gain(x, y, FIELD_BAND_GAIN, 250.0, rng)
        y = broaden(y, FIELD_FWHM_CM1)
        y = add_baseline(x, y, rng.uniform(0, FIELD_BASELINE), rng)
        y = add_noise(y, FIELD_SNR, rng)
        x = x + rng.uniform(-FIELD_OFFSET_CM1, FIELD_OFFSET_CM1)
        out[i] = _to_grid(*crop(x, y, *FIELD_RANGE_CM1), spectrum)
    return out
