"""One answer gate for listen and classify: each state reached from a crafted spectrum, and the same
spectrum gets the same state through both commands."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.answer import ADVICE, AnswerGate
from edge.bundle import DEFAULT_BUNDLE, load_bundle
from edge.cli import app
from edge.identifier import Identifier
from edge.listen import Listener
from firmware_bridge.instrument import Detector
from firmware_bridge.link import DeviceInfo, RawFrame
from firmware_bridge.profiles import load_profile
from ramancore.preprocessing import GRID

runner = CliRunner()
QUARTZ_BANDS = (128, 206, 264, 355, 464, 696, 808, 1085, 1160)


def _bands(centres, width=4.0) -> np.ndarray:
    return sum(1 / (1 + ((GRID - c) / width) ** 2) for c in centres)


def test_gate_states_from_crafted_spectra():
    gate = AnswerGate(confidence=0.5, min_snr=8.0)
    rng = np.random.default_rng(0)
    clean = _bands(QUARTZ_BANDS) + rng.normal(0, 0.005, GRID.size)
    noise = rng.normal(0, 1.0, GRID.size)
    assert gate.signal_state(clean) is None
    assert gate.signal_state(noise) == "signal too weak"
    assert gate.signal_state(clean, saturated=True) == "saturated"
    assert gate.state(0.5, best_hqi=900) == "identified"
    assert gate.state(0.49, best_hqi=900) == "possible match"
    floored = AnswerGate(confidence=0.5, not_in_library_hqi=600)
    assert floored.state(0.99, best_hqi=599) == "not in library"  # a poor best hit outranks any confidence
    assert floored.state(0.99, best_hqi=600) == "identified"
    assert "integration time" in ADVICE["saturated"] and "library add" in ADVICE["not in library"]


@pytest.fixture(scope="module")
def bundle():
    if not DEFAULT_BUNDLE.is_dir():
        pytest.skip("no bundled model in edge/models/default")
    return load_bundle()


class _StubLink:
    def __init__(self, profile):
        self.profile = profile


def _listener(bundle) -> Listener:
    """A listener wired to a stub link and the bundled model: no port."""
    profile = load_profile("emulator-785")
    listener = Listener("stub", Identifier(bundle, num_threads=1), profile.protocol, profile=profile)
    listener.transport.link = _StubLink(profile)
    listener.transport.device = listener.stats.device = DeviceInfo("stub", "0", "0", profile)
    return listener


def _frame(profile, intensity, saturate=False, integration_us=100_000) -> RawFrame:
    detector = Detector(profile, spike_probability=0.0)
    counts, saturated = detector.render(GRID, intensity, integration_us, np.random.default_rng(1))
    if saturate:
        counts = counts.copy()
        counts[1000:1010] = profile.max_count
        saturated = True
    return RawFrame(counts, 1, integration_us, saturated, False, time.monotonic())


def _held_out(bundle, listener, index: int = 0, identified: bool = True) -> tuple[str, np.ndarray]:
    """The ``index``-th spectrum of the bundle's demo set (in no library) that the bundle names right through the
    listen path (and, with ``identified``, identifies): whichever minerals the shipped bundle plays, the tests play a
    sure one."""
    profile = listener._link.profile
    sure = [
        (m, s)
        for m, s in bundle.demo_spectra()
        if (a := listener.identify(_frame(profile, s))).top and a.top[0][0] == m and (a.state == "identified" or not identified)
    ]
    assert len(sure) > index, "the bundle names (identifies) too few of its own demo spectra"
    return sure[index]


def test_listen_reaches_every_state(bundle):
    listener = _listener(bundle)
    profile = listener._link.profile
    mineral, known = _held_out(bundle, listener)
    assert listener.identify(_frame(profile, known, saturate=True)).state == "saturated"
    assert listener.identify(_frame(profile, known * 0.002, integration_us=2_000)).state == "signal too weak"
    answer = listener.identify(_frame(profile, known))
    assert answer.state == "identified" and answer.top[0][0] == mineral and answer.answer.library_hit["mineral"] == mineral
    # bands where no mineral of the library has them: the best hit is poor, so "not in library"
    assert listener.identify(_frame(profile, _bands((95, 340, 610, 1370), width=2.0))).state == "not in library"
    # the threshold decides between identified and possible match
    identifier = listener.identifier
    identifier.gate = AnswerGate(confidence=1.01, not_in_library_hqi=identifier.gate.not_in_library_hqi)
    assert listener.identify(_frame(profile, known)).state == "possible match"


def test_classify_gives_the_state_listen_gives(bundle, tmp_path):
    """The same spectrum, once as a listen capture and once classified from the file: same state, same top-1."""
    listener = _listener(bundle)
    listener.session.capture_dir = tmp_path
    profile = listener._link.profile
    results = []
    mineral, first = _held_out(bundle, listener, 0)  # one identified, one of another mineral in any state
    second = next(s for m, s in (_held_out(bundle, listener, i, identified=False) for i in range(2)) if m != mineral)
    for frame in (_frame(profile, first), _frame(profile, second), _frame(profile, first, saturate=True), _frame(profile, first * 0.002, integration_us=2_000)):
        results.append(listener.identify(frame))
    for live in results:
        offline = runner.invoke(app, ["classify", "--raw", "--json", str(live.capture)])
        assert offline.exit_code == 0, offline.output
        record = json.loads(offline.stdout)
        assert record["state"] == live.state
        assert [t["mineral"] for t in record["top"][:1]] == [m for m, _ in live.top[:1]]
    assert [r.state for r in results][-2:] == ["saturated", "signal too weak"]


def test_the_live_add_key_puts_the_shown_spectrum_in_the_user_library(bundle, tmp_path):
    """What `a` on the live screen does: the spectrum on screen joins the user library under the typed
    name and is searched from the next frame on."""
    from edge.session import add_shown_spectrum
    from edge.user_library import UserLibrary

    listener = _listener(bundle)
    listener.identifier.user_library = UserLibrary(tmp_path)
    profile = listener._link.profile
    mineral, known = _held_out(bundle, listener)
    frame = _frame(profile, known)
    shown = listener.identify(frame)
    assert add_shown_spectrum(listener, shown, "  ") == "not added"
    added = add_shown_spectrum(listener, shown, "Field quartz 7")
    assert added.startswith("added U0001: Field quartz 7")
    assert f"it matches {mineral}" in added and "the same mineral under another name?" in added  # pointed out when added
    assert [e.mineral for e in UserLibrary(tmp_path).entries] == ["Field quartz 7"]  # saved, not only in memory
    again = listener.identify(frame)
    # searched from the next frame on: its best hit, and a candidate beside the model's own answer
    assert again.answer.library_hit["id"] == "U0001" and "Field quartz 7" in [m for m, _ in again.top]
    weak = listener.identify(_frame(profile, known * 0.002, integration_us=2_000))
    assert add_shown_spectrum(listener, weak, "x").startswith("not added: signal too weak")


def test_noise_about_an_offset_is_too_weak_and_a_coarse_instrument_never_identifies():
    from edge.answer import MAX_RESOLUTION_CM1

    gate = AnswerGate(confidence=0.5, min_snr=8.0)
    noise = 1000.0 + np.random.default_rng(0).normal(0, 5.0, 2000)  # a flat reading with no band, far from zero
    assert gate.signal_state(noise) == "signal too weak"
    assert gate.state(0.99, 900.0) == "identified"
    assert gate.state(0.99, 900.0, resolution_cm1=MAX_RESOLUTION_CM1 / 3) == "identified"
    assert gate.state(0.99, 900.0, resolution_cm1=345.0) == "possible match"
