"""What a listening session keeps on disk: the JSON-lines log and the raw captures.

Both are field records a user may need months later, so neither is ever lost or overwritten:

- the log is opened for appending before the port is opened (a path that cannot be written is one
  line before any handshake), and every line is flushed and fsynced (a pulled battery keeps it);
- a capture's name comes from the session's start time and the listener's own count, never from
  the device's frame counter (which restarts on every reconnect), and it is created exclusively:
  an existing file is never replaced. Each log line names its capture file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import IO

import numpy as np


class SessionLogError(RuntimeError):
    """The log or the capture folder cannot be used; one line naming it."""


class SessionLog:
    """The JSON-lines log (optional) and the capture folder (optional) of one session."""

    def __init__(self, log_path: Path | None = None, capture_dir: Path | None = None) -> None:
        self.log_path, self.capture_dir = log_path, capture_dir
        self.started = dt.datetime.now(dt.UTC)
        self.captures = 0
        self._log: IO[str] | None = None
        if capture_dir is not None:
            if capture_dir.exists() and not capture_dir.is_dir():
                raise SessionLogError(f"{capture_dir}: --save-spectra must be a folder, and this is a file")
            try:
                capture_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SessionLogError(f"{capture_dir}: cannot create the capture folder ({exc.strerror})") from None
            if not os.access(capture_dir, os.W_OK):
                raise SessionLogError(f"{capture_dir}: the capture folder is not writable")
        if log_path is not None:
            if log_path.is_dir():
                raise SessionLogError(f"{log_path}: --log must be a file, and this is a folder")
            try:
                self._log = log_path.open("a")
            except OSError as exc:
                raise SessionLogError(f"{log_path}: cannot open the log for appending ({exc.strerror})") from None

    def write(self, record: dict) -> None:
        """Append one JSON line, flushed and fsynced."""
        if self._log is None:
            return
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()
        os.fsync(self._log.fileno())

    def save_capture(self, header: list[str], x: np.ndarray, counts: np.ndarray) -> Path | None:
        """Write one raw frame as CSV (``# `` header lines, then Raman shift and counts); its path, or None."""
        if self.capture_dir is None:
            return None
        self.captures += 1
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        path = self.capture_dir / f"capture_{stamp}_{self.captures:06d}.csv"
        while True:
            try:
                fh = path.open("x")  # exclusive: never replaces a capture, even of another session
                break
            except FileExistsError:
                self.captures += 1
                path = self.capture_dir / f"capture_{stamp}_{self.captures:06d}.csv"
        with fh:
            fh.writelines(f"# {line}\n" for line in header)
            fh.write("raman_shift_cm1,counts\n")
            fh.writelines(f"{xi:.3f},{yi:.1f}\n" for xi, yi in zip(x, counts))
        return path

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
