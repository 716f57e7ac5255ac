"""Emulator -> pseudo-terminal -> listen -> log, for every protocol and fault."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import serial

from edge.answer import Answer
from edge.bundle import DEFAULT_BUNDLE, load_bundle
from edge.identifier import Identifier
from edge.listen import Listener, PortError, open_port
from firmware_bridge.emulator import Emulator, Faults
from firmware_bridge.profiles import load_profile
from ramancore.preprocessing import GRID


def emulator_for(bundle_dir, profile="emulator-785", **kwargs) -> Emulator:
    """An emulator playing a bundle's reference spectra (not started)."""
    return Emulator(load_profile(profile), load_bundle(bundle_dir).demo_spectra(), GRID, **kwargs)


def run_listener(bundle_dir, tmp_path, protocol="frame", profile="emulator-785", faults=None, count=15, interval=0.05, timeout=30, link=False):
    bundle = load_bundle(bundle_dir)
    emulator = emulator_for(
        bundle_dir, profile, protocol=protocol, interval_s=interval, faults=faults or Faults(), seed=1,
        link_path=tmp_path / "spectrometer" if link else None,
    )
    identifier = Identifier(bundle, num_threads=1)  # before the port opens, as the CLI does
    port = emulator.start()
    log = tmp_path / "log.jsonl"
    listener = Listener(port, identifier, protocol, profile=load_profile(profile), log_path=log)
    deadline = time.monotonic() + timeout
    try:
        listener.connect()
        stats = listener.run(lambda *_: None, lambda: time.monotonic() > deadline, count)
    finally:
        listener.close()
        emulator.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return emulator, listener, stats, records


def test_frame_protocol_identifies_known_minerals_and_logs_every_one(edge_bundle, tmp_path):
    emulator, listener, stats, records = run_listener(edge_bundle, tmp_path, count=18)
    assert stats.identifications == len(records) == 18 and stats.frames_rejected == 0
    played = {p.counter: p.mineral for p in emulator.played}
    assert [r["seq"] for r in records] == sorted(played)[: len(records)]  # every frame, in order, none lost
    for r in records:
        assert set(r) == {
            "schema", "file", "top", "model", "latency_ms", "seq", "time", "state", "device", "port", "confidence", "library_hit", "source", "group"
        }
        assert r["port"] == r["file"]
        assert r["device"].startswith("ramanedge emulator 785 nm")
    named = [r for r in records if r["top"]]
    right = sum(r["top"][0]["mineral"] == played[r["seq"]] for r in named)
    print("states", [r["state"] for r in records], "right", right, len(named))
    assert len(named) >= 15 and right / len(named) >= 0.5  # 1332 classes: chance is 1/1332


def test_faults_are_counted_and_no_frame_is_lost_silently(edge_bundle, tmp_path):
    faults = Faults(garbage=0.15, bitflip=0.15, truncate=0.1)
    emulator, listener, stats, records = run_listener(edge_bundle, tmp_path, faults=faults, count=30)
    seen = {r["seq"] for r in records}
    sent = [p for p in emulator.played if p.counter <= max(seen)]
    lost = [p for p in sent if p.counter not in seen]
    assert lost and all(p.faulted in ("bitflip", "truncate") for p in lost)
    # every lost frame leaves a gap in the device's frame counter, and is counted there
    assert listener._link.missing == len(lost) > 0 and stats.frames_rejected > 0
    assert all(p.counter in seen for p in sent if p.faulted in ("", "garbage"))


@pytest.mark.parametrize(("protocol", "profile"), [("ascii", "c12880ma-ascii"), ("ascii", "c12880ma-query16"), ("obp", "ocean-sts-785")])
def test_other_protocols_end_to_end(edge_bundle, tmp_path, protocol, profile):
    emulator, listener, stats, records = run_listener(edge_bundle, tmp_path, protocol, profile, count=6, interval=0.05)
    assert stats.identifications == 6 and stats.frames_rejected == 0
    assert stats.device.profile.pixels == load_profile(profile).pixels
    if protocol == "obp":
        assert stats.device.serial == "EMU00001"  # read from the device over OBP
    assert {r["state"] for r in records} <= {"identified", "possible match", "not in library", "signal too weak", "saturated"}
    played = {p.counter: p.mineral for p in emulator.played}
    named = [r for r in records if r["top"]]
    right = sum(r["top"][0]["mineral"] == played[r["seq"]] for r in named)
    if protocol == "obp":  # a ~15 nm C12880MA cannot resolve Raman bands (36 cm^-1 a pixel): only the STS must name them
        assert len(named) >= 4 and right >= len(named) // 2  # classified, mostly right: not every frame "signal too weak"
    else:  # and it never claims to: its profile's resolution (~350 cm^-1) caps every answer below "identified"
        assert "identified" not in {r["state"] for r in records}


def test_unplugged_device_is_waited_for_and_reopened(edge_bundle, tmp_path):
    faults = Faults(unplug_every_s=1.0, unplugged_s=0.6)
    emulator, listener, stats, records = run_listener(edge_bundle, tmp_path, faults=faults, count=40, interval=0.05, link=True)
    assert stats.reconnects >= 1 and stats.identifications == 40


def test_stalls_only_slow_the_stream(edge_bundle, tmp_path):
    faults = Faults(stall=0.2, stall_s=0.4)
    emulator, listener, stats, records = run_listener(edge_bundle, tmp_path, faults=faults, count=10)
    assert stats.identifications == 10 and stats.frames_rejected == 0


def test_port_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(PortError, match=r"/dev/ttyNOPE0: no such port \(is the spectrometer plugged in"):
        open_port("/dev/ttyNOPE0", 115200)

    def denied(*args, **kwargs):
        raise serial.SerialException(errno.EACCES, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied: '/dev/ttyUSB0'")

    monkeypatch.setattr(serial, "Serial", denied)
    with pytest.raises(PortError, match="/dev/ttyUSB0: permission denied .*dialout"):
        open_port("/dev/ttyUSB0", 115200)


def test_listen_cli_json_and_clean_ctrl_c(edge_bundle, tmp_path):
    emulator = emulator_for(edge_bundle, interval_s=0.05, seed=2)
    port = emulator.start()
    log = tmp_path / "log.jsonl"
    process = subprocess.Popen(
        # --protocol in capitals: choices are case-insensitive (it was a KeyError traceback)
        [sys.executable, "-m", "edge", "listen", port, "--protocol", "FRAME", "--model", str(edge_bundle), "--json", "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(5)]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        emulator.stop()
    assert process.returncode == 0, err
    assert all(json.loads(line)["seq"] for line in lines)
    assert "Traceback" not in err and "identifications; frames ok" in err
    logged = log.read_text().splitlines()
    assert len(logged) >= 5 and all(json.loads(line) for line in logged)


def test_listen_cli_missing_port(edge_bundle):
    result = subprocess.run(
        [sys.executable, "-m", "edge", "listen", "/dev/ttyNOPE0", "--model", str(edge_bundle)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: /dev/ttyNOPE0: no such port") and len(result.stderr.strip().splitlines()) == 1


def test_emulate_prints_its_port_first_and_serves_it(edge_bundle):
    process = subprocess.Popen(
        [sys.executable, "-m", "edge", "emulate", "--model", str(edge_bundle), "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = process.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        with serial.Serial(port, 921600, timeout=0.05) as s:
            from firmware_bridge.frame_link import FrameLink

            link = FrameLink(s, load_profile("emulator-785"))
            info, dark = link.open()
            frames = []
            deadline = time.monotonic() + 5
            while len(frames) < 3 and time.monotonic() < deadline:
                frames += link.frames()
        assert info.serial == "EMU00001" and dark is not None and len(frames) >= 3
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0 and "spectra, " in err


def test_demo_runs_on_the_bundled_model():
    from edge.bundle import DEFAULT_BUNDLE, load_bundle

    if not DEFAULT_BUNDLE.is_dir():
        pytest.skip("no bundled model in edge/models/default")
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--count", "6", "--json", "--interval", "0.05"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 6 and "demo: " in result.stderr
    # well-known minerals first, each answer beside the mineral played, the score from those very answers
    assert [r["played"] for r in records[:3]] == [m for m, _ in load_bundle(DEFAULT_BUNDLE).demo_spectra()[:3]]
    right = sum(1 for r in records if r["top"] and r["top"][0]["mineral"] == r["played"])
    named = sum(1 for r in records if r["top"])
    assert f"top-1 = mineral played for {right} of {named}" in result.stderr


def test_demo_screen_marks_each_answer_and_keeps_score():
    from rich.console import Console

    from edge.listen import Identification
    from edge.live_view import DemoScore, render

    class Fake:  # what render reads of a listener
        port_name, protocol = "/dev/pts/9", "frame"

        def __init__(self):
            from edge.listen import Stats

            self.stats = Stats(status="listening")

        def frame_counts(self):
            return 5, 0

    listener, score = Fake(), DemoScore()
    spectrum = np.exp(-(((np.arange(1570) - 434) / 4.0) ** 2)).astype(np.float32)
    for seq, (played, named) in enumerate([("Quartz", "Quartz"), ("Calcite", "Dolomite")], start=1):
        hit = {"mineral": named, "id": "R050001", "source": "bundle", "hqi": 912.0, "gap": 80.0}
        answer = Answer("identified", [(named, 0.9), ("Gypsum", 0.05)], 0.9, hit, "model", 1.0, spectrum)
        result = Identification("t", seq, answer, 1.0, spectrum)
        listener.stats.last = result
        listener.stats.identifications = seq
        listener.stats.latencies.append(1.0)
        score.add(played, result)
        for width in (80, 60):  # readable on a small terminal: no line wraps, the axis fits
            console = Console(width=width, record=True)
            console.print(render(listener, score, width))
            screen = console.export_text()
            lines = screen.splitlines()
            assert all(line.startswith(("╭", "│", "╰")) for line in lines), "a line wrapped out of the panel"
            assert any("cm^-1" in line and "1599" in line for line in lines)
        assert f"played {played}" in screen
        assert ("✔" in screen) == (played == named) and ("✘" in screen) == (played != named)
    assert "score 1/2 named correctly" in screen


def test_auto_protocol_finds_obp_and_profile_overrides_the_device(edge_bundle, tmp_path):
    bundle = load_bundle(edge_bundle)
    emulator = emulator_for(edge_bundle, "ocean-sts-785", protocol="obp", seed=4)
    port = emulator.start()
    try:
        listener = Listener(port, Identifier(bundle, num_threads=1), "auto")
        info = listener.connect()
        assert listener.protocol == "obp" and info.serial == "EMU00001" and info.profile.pixels == 1024
        # the device's float32 coefficients were read over OBP
        assert info.profile.wavelength_coefficients[1] == pytest.approx(0.155, rel=1e-6)
        listener.close()

        mine = replace(load_profile("ocean-sts-785"), wavelength_coefficients=(791.0, 0.15, -1e-5, 0.0))
        listener = Listener(port, Identifier(bundle, num_threads=1), "obp", profile=mine)
        assert listener.connect().profile.wavelength_coefficients == (791.0, 0.15, -1e-5, 0.0)
        listener.close()
    finally:
        emulator.stop()


def test_saved_captures_classify_as_they_did_live(edge_bundle, tmp_path):
    bundle = load_bundle(edge_bundle)
    emulator = emulator_for(edge_bundle, interval_s=0.05, seed=5)
    port = emulator.start()
    captures = tmp_path / "captures"
    sessions = []
    try:
        for _ in range(2):  # a second session into the same folder: the device's counter starts again
            listener = Listener(port, Identifier(bundle, num_threads=1), "frame", save_spectra=captures)
            listener.connect()
            sessions.append([])
            listener.run(lambda r, record: sessions[-1].append(record), lambda: False, count=4)
            listener.close()
    finally:
        emulator.stop()
    first_session = {r["capture"]: Path(r["capture"]).read_text() for r in sessions[0]}
    results = sessions[1]
    files = [Path(r["capture"]) for r in results]
    assert len(set(first_session) | {str(f) for f in files}) == 8 == len(list(captures.glob("capture_*.csv")))
    assert all(Path(name).read_text() == text for name, text in first_session.items())  # nothing overwritten
    from typer.testing import CliRunner

    from edge.cli import app

    again = CliRunner().invoke(app, ["classify", "--raw", "--json", "--model", str(edge_bundle), *map(str, files)])
    assert again.exit_code == 0, again.output
    offline = [json.loads(line) for line in again.stdout.splitlines()]
    assert sum(1 for r in results if r["top"]) >= 3  # classified live, not all "signal too weak"
    for live, later in zip(results, offline):
        assert later["state"] == live["state"]
        if live["top"]:
            assert later["top"][0]["mineral"] == live["top"][0]["mineral"]


def test_a_silent_port_is_not_called_connected():
    """auto on a port where nothing answers and nothing streams: one line, not "connected: C12880MA"."""
    import pty

    from firmware_bridge.link import LinkError

    master, slave = pty.openpty()
    try:
        listener = Listener(os.ttyname(slave), Identifier(load_bundle(DEFAULT_BUNDLE), num_threads=1), "auto")
        with pytest.raises(LinkError, match="no device answering .*tried frame, obp, ascii.*check the cable"):
            listener.connect()
        assert listener.stats.device is None and listener.stats.status == "connecting"
    finally:
        os.close(master)
        os.close(slave)


def test_listen_on_a_silent_port_says_so_and_keeps_trying(edge_bundle):
    """Not "connected": one line naming the port and what to check, retried until Ctrl-C, then a clean exit."""
    import pty

    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge", "listen", os.ttyname(slave), "--protocol", "frame", "--json", "--model", str(edge_bundle)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        lines: list[str] = []  # stderr as it comes: on a busy machine the start alone may take seconds
        reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        deadline = time.monotonic() + 60.0
        while not any("retrying every" in line for line in lines) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        time.sleep(1.5)  # a retry or two more: the line must not repeat
        assert process.poll() is None  # still trying
        process.send_signal(signal.SIGINT)
        out = process.stdout.read()  # type: ignore[union-attr]
        process.wait(timeout=20)
        reader.join(timeout=5)
        err = "".join(lines)
    finally:
        os.close(master)
        os.close(slave)
    assert process.returncode == 0 and out == ""
    assert "no answer to command" in err and "retrying every 1 s" in err and "Traceback" not in err
    assert "connected" not in err and err.count("retrying") == 1


def test_ctrl_c_on_a_silent_port_stops_within_half_a_second():
    """auto on a port where nothing answers spends seconds in its handshakes: stopping must not wait for them."""
    import pty
    import threading

    master, slave = pty.openpty()
    stop = threading.Event()
    try:
        listener = Listener(os.ttyname(slave), Identifier(load_bundle(DEFAULT_BUNDLE), num_threads=1), "auto")
        worker = threading.Thread(target=listener.connect_retrying, args=(stop.is_set, lambda line: None))
        worker.start()
        for wait in (0.3, 1.2, 2.5):  # inside the frame, OBP and ASCII handshakes in turn
            time.sleep(wait)
        stop.set()
        stopped = time.monotonic()
        worker.join(timeout=5.0)
        assert not worker.is_alive() and time.monotonic() - stopped <= 0.5
    finally:
        os.close(master)
        os.close(slave)


def test_an_unplugged_device_is_said_at_once_on_stderr_in_json_mode():
    """--json used to say nothing while the device was gone: now each change of the link is one stderr line."""
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--json", "--unplug-every", "1", "--count", "30", "--interval", "0.05"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    lost = [i for i, line in enumerate(lines) if line.endswith("device disconnected: waiting for it to come back")]
    assert lost and any(line.endswith(": listening") for line in lines[lost[0] :])
