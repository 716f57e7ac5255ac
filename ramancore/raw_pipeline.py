"""From raw detector counts to the model input: the one raw pipeline of the project.

dark subtraction -> pixel -> wavelength (calibration polynomial) -> Raman shift
(1e7/laser - 1e7/wavelength) -> the edge filter's roll-on and a steep Rayleigh wing cut off the low-shift
end -> cosmic-spike removal -> baseline (fluorescence) removal ->
:func:`ramancore.preprocessing.preprocess` (min-max, the model grid). Each step is a small pure
function, so it can be timed and tested alone; :data:`RAW_PIPELINE`, a :class:`RawPipeline`
built once, strings them together and is what every caller uses: ``ramanedge classify`` (raw files)
and ``listen`` on the device, ``trainer prepare --raw clean`` and the fair/poor set on the host, and the
RAW/Processed parity benchmark. Its windows are in cm^-1, not in points, so a 2048-pixel CCD, a 1024-pixel
STS and RRUFF's 0.5 cm^-1 files get the same physical filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ramancore.physics import noise_sigma, raman_shift_cm1
from ramancore.preprocessing import is_on_grid, preprocess


class DetectorCalibration(Protocol):
    """What the raw path needs to know of a detector (a device profile has it)."""

    @property
    def laser_nm(self) -> float: ...

    @property
    def usable_pixels(self) -> tuple[int, int]: ...

    def wavelengths_nm(self, pixels: int | None = None) -> np.ndarray: ...


#: SNIP half window, cm^-1. Tuned as 40 points on the 150 shared RRUFF RAW/Processed twins
#: (0.48 cm^-1 per point there, so 19 cm^-1), which gave the closest match to RRUFF's own
#: baseline removal (median cosine 0.996 after preprocessing; 25 points: 0.988, 55: 0.989;
#: arPLS lam=1e5: 0.994; AsLS: 0.990; modpoly-5: 0.980).
SNIP_HALF_WINDOW_CM1 = 19.0
#: Spike-filter window, cm^-1 (7 points on RRUFF's files), never fewer than 5 points: a spike
#: is 1-2 pixels wide whatever the detector, and the filter must see past it.
SPIKE_WINDOW_CM1 = 3.4
MIN_SPIKE_WINDOW_POINTS = 5
#: A spike stands this many noise sigmas above its local median...
SPIKE_THRESHOLD = 8.0
#: ...and by this fraction of its height above the local floor (bands: < 0.8, spikes: ~1).
SPIKE_SHARPNESS = 0.85
#: The long-pass (edge or notch) filter's roll-on is looked for within this distance of a raw spectrum's
#: first point, cm^-1: RRUFF's RAW files start at 85-140 cm^-1 and their filters open within about 100 cm^-1.
EDGE_SEARCH_CM1 = 150.0
#: Median smoothing before the slope is taken, cm^-1 (noise and spikes must not pass for the edge).
EDGE_SMOOTH_CM1 = 5.0
#: The roll-on ends where the smoothed counts rise at less than this fraction of their steepest slope.
EDGE_SETTLED = 0.1
#: It is an edge, not a band, if the counts before it are at most EDGE_RATIO of those EDGE_AFTER_CM1
#: past its end, and those are at least EDGE_PLATEAU of the counts at its end: past a band's top the
#: counts fall back, past a filter edge they stay up. Chosen on the 487 fair/poor RAW/Processed twins
#: and the 150 excellent ones by the cosine of the cleaned RAW file to its Processed twin (no mineral
#: label used): fair/poor mean 0.828 -> 0.875, excellent 0.972 -> 0.979 (a plateau of 0.5 cut into
#: four excellent spectra's first band, 0.7 into one).
EDGE_RATIO = 0.5
EDGE_PLATEAU = 0.7
EDGE_AFTER_CM1 = (20.0, 80.0)
#: Past the edge, the laser's Rayleigh wing may still fall steeply: where the counts drop below (1 - WING_DROP)
#: of the first point's within WING_SPAN_CM1, the spectrum starts at their lowest point there. Chosen as the edge's
#: thresholds were (fair/poor twins' mean cosine 0.875 -> 0.884, 31 better and 2 worse by more than 0.02; the 150
#: excellent twins unchanged; 40-80 cm^-1 and drops of 0.4-0.6 gave 0.884-0.885 with more excellent ones hurt).
WING_SPAN_CM1 = 60.0
WING_DROP = 0.6


def subtract_dark(counts: np.ndarray, dark: np.ndarray | None) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts if dark is None else counts - dark


def points_for(x: np.ndarray, width_cm1: float) -> float:
    """How many points of ``x`` (cm^-1, any direction, maybe irregular) span ``width_cm1``."""
    step = float(np.median(np.abs(np.diff(x))))
    return width_cm1 / step if step > 0 else 1.0


def _smoothed(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` median-filtered over EDGE_SMOOTH_CM1 (at least 3 points, odd): the counts the cuts below look at."""
    from scipy.ndimage import median_filter  # here, not at import: every command would pay for scipy

    size = max(3, int(round(points_for(x, EDGE_SMOOTH_CM1)))) | 1
    return median_filter(np.asarray(y, dtype=np.float64), size=size, mode="nearest")


def edge_filter_end(x: np.ndarray, y: np.ndarray, search_cm1: float = EDGE_SEARCH_CM1, ratio: float = EDGE_RATIO) -> int:
    """Index of the first point past the filter edge's roll-on at the low-shift end; 0 if there is none.

    Below a spectrometer's long-pass filter the detector sees almost nothing; across the edge the counts
    climb to the spectrum's level within a few tens of cm^-1. SNIP cannot follow that cliff and leaves it
    as the tallest "band" of the cleaned spectrum, against which min-max then scales every real band
    down. ``x`` ascending, cm^-1;
    ``search_cm1`` (cm^-1, default :data:`EDGE_SEARCH_CM1`): how far from the first point to look;
    ``ratio`` (default :data:`EDGE_RATIO`): the most the counts before the rise may be, as a fraction of
    those past it. A band at the start falls back after its top, so it is never cut.
    """
    region = np.flatnonzero(x <= x[0] + search_cm1)
    if region.size < 5:
        return 0
    smooth = _smoothed(x, y)
    slope = np.gradient(smooth[region], x[region])
    steepest = int(np.argmax(slope))
    if slope[steepest] <= 0:
        return 0
    end = steepest
    while end + 1 < region.size and slope[end] > EDGE_SETTLED * slope[steepest]:
        end += 1
    knee = x[region[end]]
    past = (x >= knee + EDGE_AFTER_CM1[0]) & (x <= knee + EDGE_AFTER_CM1[1])
    if not past.any():
        return 0
    level = float(np.median(smooth[past]))
    if smooth[: region[steepest] + 1].min() > ratio * level or level < EDGE_PLATEAU * smooth[region[end]]:
        return 0
    return int(region[end])


def rayleigh_wing_end(x: np.ndarray, y: np.ndarray, span_cm1: float = WING_SPAN_CM1, drop: float = WING_DROP) -> int:
    """Index of the lowest point of a steep fall at the low-shift start (the Rayleigh wing past the filter), 0 if none.

    ``x`` ascending, cm^-1; ``span_cm1`` (cm^-1, default :data:`WING_SPAN_CM1`): how far from the first point to
    look; ``drop`` (default :data:`WING_DROP`): by what fraction of the first point's counts they must fall there. A
    SNIP baseline cannot follow such a fall at the end of the range and leaves a hump the model reads as a band.
    """
    region = np.flatnonzero(x <= x[0] + span_cm1)
    if region.size < 5:
        return 0
    smooth = _smoothed(x, y)[region]
    lowest = int(np.argmin(smooth))
    return lowest if smooth[0] > 0 and smooth[lowest] < (1.0 - drop) * smooth[0] else 0


def remove_spikes(y: np.ndarray, threshold: float = SPIKE_THRESHOLD, window: int = 7) -> tuple[np.ndarray, int]:
    """Replace cosmic-ray spikes by the local median; returns (y, spike pixels).

    A spike is one or two pixels wide; a Raman band, however sharp, spans more. So a pixel is
    a spike when it stands above the median of its ``window`` neighbours (points) by more than
    ``threshold`` times the noise *and* by nearly all of its height above the window's floor
    (the top of a 3-pixel-wide band stands out by three quarters of it, a spike by all).
    """
    from scipy.ndimage import median_filter, minimum_filter  # here, not at import: every command would pay for scipy

    y = np.asarray(y, dtype=np.float64)
    local = median_filter(y, size=window, mode="nearest")
    excess = y - local
    noise = noise_sigma(y)
    height = y - minimum_filter(y, size=window, mode="nearest")
    spikes = (excess > threshold * max(noise, 1e-12)) & (excess > SPIKE_SHARPNESS * height)
    cleaned = np.where(spikes, local, y)
    return cleaned, int(np.count_nonzero(spikes))


def remove_baseline(x: np.ndarray, y: np.ndarray, half_window: int = 40) -> np.ndarray:
    """Subtract a SNIP baseline (fluorescence, detector offset); ``half_window`` in points."""
    from pybaselines import Baseline  # here, not at import: it pulls in scipy.signal (~0.7 s on this CPU)

    baseline, _ = Baseline(x_data=x).snip(y, max_half_window=half_window)
    return y - baseline


@dataclass(frozen=True)
class RawPipeline:
    """The raw path with its parameters; windows in cm^-1 (converted to points per spectrum)."""

    spike_window_cm1: float = SPIKE_WINDOW_CM1
    spike_threshold: float = SPIKE_THRESHOLD
    baseline_half_window_cm1: float = SNIP_HALF_WINDOW_CM1
    cut_filter_edge: bool = True
    cut_rayleigh_wing: bool = True

    def windows(self, x: np.ndarray) -> tuple[int, int]:
        """(spike window, SNIP half window) in points for a spectrum sampled at ``x``."""
        spike = max(MIN_SPIKE_WINDOW_POINTS, int(round(points_for(x, self.spike_window_cm1))))
        spike += 1 - spike % 2  # odd: centred on the pixel judged
        return spike, max(1, int(round(points_for(x, self.baseline_half_window_cm1))))

    def frame_to_raman(self, counts: np.ndarray, dark: np.ndarray | None, profile: DetectorCalibration) -> tuple[np.ndarray, np.ndarray]:
        """Raw detector frame -> (Raman shift cm^-1, dark-subtracted counts) over the usable Stokes pixels;
        ``profile``: anything that knows its pixels' wavelengths, laser line and usable pixels (a device profile)."""
        y = subtract_dark(counts, dark)
        x = raman_shift_cm1(profile.wavelengths_nm(y.size), profile.laser_nm)
        lo, hi = profile.usable_pixels
        x, y = x[lo : hi + 1], y[lo : hi + 1]
        stokes = x > 0
        return x[stokes], y[stokes]

    def clean(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
        """Edge, wing, spike and baseline removal of a spectrum in Raman shift; returns (y, spike count), ``y`` in
        the order of ``x`` and zero where the start was cut (below the filter edge nothing Raman was measured)."""
        order = np.argsort(x, kind="stable")  # the edge is looked for from the low-shift end
        x, y = np.asarray(x, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
        start = edge_filter_end(x, y) if self.cut_filter_edge else 0
        if self.cut_rayleigh_wing:
            start += rayleigh_wing_end(x[start:], y[start:])
        spike_window, half_window = self.windows(x[start:])
        kept, spikes = remove_spikes(y[start:], self.spike_threshold, spike_window)
        cleaned = np.zeros(len(y), dtype=np.float64)
        cleaned[order[start:]] = remove_baseline(x[start:], kept, half_window)
        return cleaned, spikes

    def model_input(self, x: np.ndarray, y: np.ndarray, raw: bool) -> tuple[np.ndarray, np.ndarray]:
        """(intensities as classified, model input) of a spectrum in Raman shift.

        ``raw``: uncorrected counts (a RRUFF RAW file, a listen capture, a frame): cleaned first.
        A spectrum already on the model grid in 0..1 (the paper's published files) is taken as
        it is. Raises :class:`ramancore.preprocessing.PreprocessingError` if it cannot be put on the grid.
        """
        if raw:
            y = self.clean(x, y)[0]
        elif is_on_grid(x, y):
            return y, np.asarray(y, dtype=np.float32)
        return y, preprocess(x, y)


#: The raw pipeline every caller uses (a test checks that they hold this very object).
RAW_PIPELINE = RawPipeline()
