"""``ramanedge listen``: read raw frames from a spectrometer, identify each, log it, survive faults.

The loop owns the serial port and the link (firmware_bridge); each good frame goes through
:mod:`edge.raw_spectra` and the shared preprocessing into the classifier, and comes out as an
:class:`Identification` that is appended to a JSON-lines log (flushed and fsynced: a field
record survives a pulled battery), printed, or shown live. Bad frames are the decoder's to
count; an unplugged device is waited for and reopened.
"""

from __future__ import annotations

import datetime as dt
import errno
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import serial

from edge.answer import CONFIDENCE, AnswerGate
from edge.preprocessing import PreprocessingError
from edge.raw_spectra import RAW_PIPELINE
from edge.runtime import Classifier
from edge.session_log import SessionLog
from firmware_bridge.link import LINKS, DeviceInfo, Link, LinkError, RawFrame
from firmware_bridge.profiles import DEFAULT_PROFILES, DeviceProfile, load_profile


class PortError(RuntimeError):
    """The port cannot be opened; one line naming it and what to do."""


def open_port(port: str, baud: int) -> serial.Serial:
    try:
        return serial.Serial(port, baudrate=baud, timeout=0.05, write_timeout=1.0)
    except serial.SerialException as exc:
        code = getattr(exc, "errno", None)
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in str(exc):
            raise PortError(
                f"{port}: permission denied (add yourself to the dialout group: sudo usermod -aG dialout $USER, then log in again)"
            ) from None
        if code == errno.ENOENT or not Path(port).exists():
            raise PortError(f"{port}: no such port (is the spectrometer plugged in? `ls /dev/ttyUSB* /dev/ttyACM*`)") from None
        raise PortError(f"{port}: cannot open ({exc})") from None


@dataclass
class Identification:
    time: str
    seq: int
    state: str  # identified | no confident match | signal too weak | saturated
    top: list[tuple[str, float]]
    latency_ms: float
    spectrum: np.ndarray | None = None  # the model input, for the live sketch
    capture: Path | None = None  # the raw frame's CSV, when captures are kept

    def record(self, source: str, model: str, device: str) -> dict:
        """The JSON line: ``classify --json`` keys plus seq, time, state, device, port and capture.

        ``file`` holds the port too, for readers of the first log format; ``port`` says it plainly.
        """
        record = {
            "file": source,
            "top": [{"mineral": m, "probability": round(p, 6)} for m, p in self.top],
            "model": model,
            "latency_ms": round(self.latency_ms, 3),
            "seq": self.seq,
            "time": self.time,
            "state": self.state,
            "device": device,
            "port": source,
        }
        if self.capture is not None:
            record["capture"] = str(self.capture)
        return record


@dataclass
class Stats:
    frames_ok: int = 0  # filled in when the loop ends; Listener.frame_counts() while it runs
    frames_rejected: int = 0
    identifications: int = 0
    reconnects: int = 0
    status: str = "connecting"
    device: DeviceInfo | None = None
    last: Identification | None = None
    latencies: list[float] = field(default_factory=list)


class Listener:
    def __init__(
        self,
        port: str,
        classifier: Classifier | None,
        protocol: str = "auto",
        baud: int | None = None,
        profile: DeviceProfile | None = None,
        log_path: Path | None = None,
        save_spectra: Path | None = None,
        confidence: float = CONFIDENCE,
    ) -> None:
        self.port_name = port
        self.classifier = classifier
        self.protocol = protocol if protocol != "auto" else (profile.protocol if profile else "auto")
        self.profile = profile
        self.baud = baud or (profile.baud if profile else 921600)
        self.session = SessionLog(log_path, save_spectra)  # checked now, before any port is opened
        self.gate = AnswerGate(confidence)
        self.stats = Stats()
        self._port: serial.Serial | None = None
        self._link: Link | None = None
        self._dark: np.ndarray | None = None
        self._past_ok = self._past_rejected = 0  # frames of earlier connections (before an unplug)

    # --- connection ---------------------------------------------------------------------------

    def connect(self) -> DeviceInfo:
        """Open the port and run the handshake, trying protocols in turn for ``auto``."""
        self._port = open_port(self.port_name, self.baud)
        candidates = [self.protocol] if self.protocol != "auto" else ["frame", "obp", "ascii"]
        last_error: Exception | None = None
        for protocol in candidates:
            profile = self.profile if self.profile and self.profile.protocol == protocol else load_profile(DEFAULT_PROFILES[protocol])
            link = LINKS[protocol](self._port, profile)
            try:
                info, self._dark = link.open()
            except LinkError as exc:
                last_error = exc
                continue
            except (serial.SerialException, OSError) as exc:  # unplugged during the handshake
                self._port.close()
                raise LinkError(f"{self.port_name}: lost during the {protocol} handshake ({exc})") from None
            if self.profile and self.profile.protocol == protocol:
                # a profile given by the user overrides what the device says of itself
                if self.profile.pixels != link.profile.pixels:
                    self._port.close()
                    raise LinkError(
                        f"{self.port_name}: profile {self.profile.name!r} has {self.profile.pixels} pixels, the device {link.profile.pixels}"
                    )
                link.profile = self.profile
                info = replace(info, profile=self.profile)
            self._link, self.protocol = link, protocol
            self.stats.device, self.stats.status = info, "listening"
            return info
        self._port.close()
        if len(candidates) > 1:
            raise LinkError(
                f"{self.port_name}: no device answering (tried {', '.join(candidates)}; last: {last_error}): "
                "check the cable, --baud and --protocol"
            )
        raise LinkError(f"{self.port_name}: {last_error}")

    def connect_retrying(self, should_stop: Callable[[], bool], say: Callable[[str], None], every_s: float = 1.0) -> DeviceInfo | None:
        """:meth:`connect`, retried while the port opens but no device answers on it; None if told to stop first.

        A port that cannot be opened at all (missing, no permission) is a :class:`PortError` at once:
        retrying would not fix it. ``say`` hears the state once, when nothing answers.
        """
        told = False
        while not should_stop():
            try:
                return self.connect()
            except LinkError as exc:
                self.stats.status = f"no device answering on {self.port_name}: check cable, baud, protocol"
                if not told:
                    say(f"{exc}; retrying every {every_s:g} s (Ctrl-C to stop)")
                    told = True
            stop_at = time.monotonic() + every_s
            while time.monotonic() < stop_at and not should_stop():
                time.sleep(0.05)
        return None

    def close(self) -> None:
        if self._link:
            self._link.close()
        if self._port:
            self._port.close()

    def _reconnect(self, should_stop: Callable[[], bool]) -> bool:
        """Wait for an unplugged device to come back; False if told to stop first."""
        self.stats.status = "device lost: waiting for it to come back"
        self.stats.reconnects += 1
        self._past_ok, self._past_rejected = self.frame_counts()
        try:
            if self._port:
                self._port.close()
        except OSError:
            pass
        self._link = None
        while not should_stop():
            try:
                self.connect()
                return True
            except (PortError, LinkError, serial.SerialException, OSError):
                time.sleep(0.3)
        return False

    def _connected(self) -> tuple[Link, DeviceInfo, Classifier]:
        """The link, the device and the classifier, which every frame needs (a bug if any is missing)."""
        if self._link is None or self.stats.device is None:
            raise RuntimeError(f"{self.port_name}: not connected; call connect() first")
        if self.classifier is None:
            raise RuntimeError("the listener has no classifier")
        return self._link, self.stats.device, self.classifier

    # --- one frame ----------------------------------------------------------------------------

    def identify(self, frame: RawFrame) -> Identification:
        """Classify one frame. Its latency runs from the frame's last byte being decoded to the result."""
        link, _, classifier = self._connected()
        profile = link.profile
        x, counts = RAW_PIPELINE.frame_to_raman(frame.counts, self._dark, profile)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        capture = self._save(frame, x, counts, now)
        top: list[tuple[str, float]] = []
        vector: np.ndarray | None = None
        try:
            y, vector = RAW_PIPELINE.model_input(x, counts, raw=True)
            refused = self.gate.signal_state(y, frame.saturated)
        except PreprocessingError:  # flat after cleaning: nothing measured
            refused = "saturated" if frame.saturated else "signal too weak"
        if refused is None and vector is not None:
            top = classifier.classify(vector, k=3).top
            state = self.gate.state(top)
        else:
            state, vector = refused or "signal too weak", None
        return Identification(now, frame.counter, state, top, (time.monotonic() - frame.received) * 1e3, vector, capture)

    def _save(self, frame: RawFrame, x: np.ndarray, counts: np.ndarray, when: str) -> Path | None:
        """The raw frame, dark-subtracted, in Raman shift, readable by `ramanedge classify --raw`; its path."""
        link, device, _ = self._connected()
        profile = link.profile
        header = [
            f"device={device.name} serial={device.serial} seq={frame.counter} time={when}",
            f"laser_nm={profile.laser_nm} integration_us={frame.integration_us} saturated={frame.saturated} "
            f"dark_subtracted={self._dark is not None}",
        ]
        return self.session.save_capture(header, x, counts)

    # --- the loop -----------------------------------------------------------------------------

    def run(self, on_result: Callable[[Identification, dict], None], should_stop: Callable[[], bool], count: int | None = None) -> Stats:
        model = self._connected()[2].bundle.model_id
        try:
            while not should_stop():
                try:
                    frames = self._link.frames() if self._link else []
                except (serial.SerialException, OSError):
                    if not self._reconnect(should_stop):
                        break
                    continue
                for frame in frames:
                    if frame.dark:
                        continue
                    result = self.identify(frame)
                    info = self._connected()[1]
                    record = result.record(self.port_name, model, f"{info.name} {info.serial}")
                    self.session.write(record)
                    self.stats.identifications += 1
                    self.stats.last = result
                    self.stats.latencies.append(result.latency_ms)
                    on_result(result, record)
                    if count and self.stats.identifications >= count:
                        return self.stats
            self.stats.status = "stopped"
        finally:
            self.stats.frames_ok, self.stats.frames_rejected = self.frame_counts()
            self.session.close()
        return self.stats

    def frame_counts(self) -> tuple[int, int]:
        """Frames decoded ok / rejected so far, over every connection."""
        link = self._link
        return self._past_ok + (link.frames_ok if link else 0), self._past_rejected + (link.rejected if link else 0)
