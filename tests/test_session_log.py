"""The session's log and captures: never overwritten, never silently lost, bad paths are one line before any port."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.session_log import SessionLog, SessionLogError


def test_captures_are_unique_and_never_replace_a_file(tmp_path):
    x, y = np.array([100.0, 101.0]), np.array([5.0, 6.0])
    first = SessionLog(capture_dir=tmp_path)
    a = first.save_capture(["device=x"], x, y)
    second = SessionLog(capture_dir=tmp_path)
    second.started = first.started  # the same second, the same name pattern: must still not collide
    b = second.save_capture(["device=y"], x, y)
    assert a != b and a.exists() and b.exists()
    assert a.read_text().startswith("# device=x") and b.read_text().startswith("# device=y")


def test_log_lines_are_appended_and_kept(tmp_path):
    log = tmp_path / "ids.jsonl"
    log.write_text('{"earlier": 1}\n')
    session = SessionLog(log_path=log)
    session.write({"seq": 1})
    session.close()
    assert [json.loads(line) for line in log.read_text().splitlines()] == [{"earlier": 1}, {"seq": 1}]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: {"log_path": p / "missing" / "x.jsonl"}, "cannot open the log for appending"),
        (lambda p: {"log_path": p}, "--log must be a file"),
        (lambda p: {"capture_dir": (p / "f").write_text("") or p / "f"}, "--save-spectra must be a folder"),
    ],
)
def test_bad_paths_are_one_line(tmp_path, setup, message):
    with pytest.raises(SessionLogError, match=message) as caught:
        SessionLog(**setup(tmp_path))
    assert len(str(caught.value).splitlines()) == 1 and str(tmp_path) in str(caught.value)


def test_every_json_line_is_fsynced_as_it_is_written(tmp_path, monkeypatch):
    """A pulled battery keeps every identification logged so far: each line reaches the disk before the next frame."""
    import os

    from edge.session_log import SessionLog

    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    log = SessionLog(tmp_path / "ids.jsonl", None)
    for seq in range(3):
        log.write({"seq": seq})
        assert len(synced) == seq + 1
    log.close()


def test_a_capture_header_reads_back_as_written(tmp_path):
    """listen writes it, classify and library add read it: one record, typed both ways."""
    from edge.capture import CaptureHeader, saturated
    from edge.spectrum_files import read_spectrum_file

    header = CaptureHeader("Emulated STS", "EMU1", 42, "2026-12-01T00:00:00.000+00:00", 785.0, 100000, True, False)
    log = SessionLog(None, tmp_path)
    path = log.save_capture(header.lines(), np.linspace(100, 1500, 50), np.linspace(0, 1000, 50))
    spectrum = read_spectrum_file(path)
    assert CaptureHeader.from_header(spectrum.header) == CaptureHeader(
        "Emulated_STS", "EMU1", 42, "2026-12-01T00:00:00.000+00:00", 785.0, 100000, True, False
    )
    assert saturated(spectrum.header) and not saturated({"NAMES": "Quartz"})
