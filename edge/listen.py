"""``ramanedge listen``: the orchestration of a session, frame by frame.

The :class:`~firmware_bridge.transport.Transport` owns the port, the protocol and reconnects;
each whole frame it hands over goes through :data:`ramancore.raw_pipeline.RAW_PIPELINE` (detector
steps, cleaning, the shared preprocessing) into the :class:`~edge.identifier.Identifier`
(signal gate, model, library search, fusion, state); the result, an :class:`Identification`, goes
to the :class:`~edge.session_log.SessionLog` (fsynced JSON lines, captures never overwritten) and
to the screen or stdout. Bad frames are the decoders' to count; an unplugged device is waited
for and reopened by the transport.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.answer import Answer, State
from edge.capture import CaptureHeader
from edge.identifier import Identifier
from edge.session_log import SessionLog
from firmware_bridge.link import DeviceInfo, Link, RawFrame
from firmware_bridge.profiles import DeviceProfile
from firmware_bridge.transport import DeviceLost, PortError, Transport, open_port
from ramancore.preprocessing import PreprocessingError
from ramancore.raw_pipeline import RAW_PIPELINE

__all__ = ["Identification", "Listener", "PortError", "Stats", "open_port"]


@dataclass
class Identification:
    time: str
    seq: int
    answer: Answer
    latency_ms: float  # from the frame's last byte to the answer
    spectrum: np.ndarray | None = None  # the model input, for the live sketch
    capture: Path | None = None  # the raw frame's CSV, when captures are kept

    @property
    def state(self) -> State:
        return self.answer.state

    @property
    def top(self) -> list[tuple[str, float]]:
        return self.answer.top

    def record(self, source: str, model: str, device: str) -> dict:
        """The JSON line: ``classify --json`` keys plus seq, time, device, port and capture.

        ``file`` holds the port too, for readers of the first log format; ``port`` says it plainly.
        """
        record = self.answer.record(
            source, model, latency_ms=round(self.latency_ms, 3), seq=self.seq, time=self.time, device=device, port=source
        )
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
        identifier: Identifier,
        protocol: str = "auto",
        baud: int | None = None,
        profile: DeviceProfile | None = None,
        log_path: Path | None = None,
        save_spectra: Path | None = None,
    ) -> None:
        self.transport = Transport(port, protocol, baud, profile, on_status=self._status)
        #: told every change of the link's status (connected, disconnected, waiting), as it happens
        self.on_status_change: Callable[[str], None] | None = None
        self.identifier = identifier
        self.session = SessionLog(log_path, save_spectra)  # checked now, before any port is opened
        self.stats = Stats()

    def _status(self, status: str) -> None:
        changed = status != self.stats.status
        self.stats.status = status
        if changed and self.on_status_change is not None:
            self.on_status_change(status)

    # --- the transport's, named for the screen and the tests ---------------------------------

    @property
    def port_name(self) -> str:
        return self.transport.port_name

    @property
    def protocol(self) -> str:
        return self.transport.protocol

    @property
    def _link(self) -> Link | None:
        return self.transport.link

    def frame_counts(self) -> tuple[int, int]:
        """Frames decoded ok / rejected so far, over every connection."""
        return self.transport.frame_counts()

    def connect(self) -> DeviceInfo:
        """Open the port and run the handshake (see :meth:`Transport.connect`)."""
        info = self.transport.connect()
        self.stats.device = info
        return info

    def connect_retrying(self, should_stop: Callable[[], bool], say: Callable[[str], None], every_s: float = 1.0) -> DeviceInfo | None:
        """Connect, retried while no device answers (see :meth:`Transport.connect_retrying`)."""
        info = self.transport.connect_retrying(should_stop, say, every_s)
        self.stats.device = info or self.stats.device
        return info

    def close(self) -> None:
        self.transport.close()

    def _connected(self) -> tuple[Link, DeviceInfo, Identifier]:
        """The link, the device and the identifier, which every frame needs (a bug if not connected)."""
        link, device = self.transport.link, self.transport.device
        if link is None or device is None:
            raise RuntimeError(f"{self.port_name}: not connected; call connect() first")
        return link, device, self.identifier

    # --- one frame ----------------------------------------------------------------------------

    def identify(self, frame: RawFrame) -> Identification:
        """Classify one frame. Its latency runs from the frame's last byte being decoded to the result."""
        link, _, identifier = self._connected()
        profile = link.profile
        x, counts = RAW_PIPELINE.frame_to_raman(frame.counts, self.transport.dark, profile)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        capture = self._save(frame, x, counts, now)
        vector: np.ndarray | None = None
        try:
            y, vector = RAW_PIPELINE.model_input(x, counts, raw=True)
            answer = identifier.answer(y, vector, frame.saturated, resolution_cm1=profile.resolution_cm1())
        except PreprocessingError:  # flat after cleaning: nothing measured
            answer = Answer(State.SATURATED if frame.saturated else State.SIGNAL_TOO_WEAK, [])
        if not answer.top:
            vector = None
        return Identification(now, frame.counter, answer, (time.monotonic() - frame.received) * 1e3, vector, capture)

    def _save(self, frame: RawFrame, x: np.ndarray, counts: np.ndarray, when: str) -> Path | None:
        """The raw frame, dark-subtracted, in Raman shift, readable by `ramanedge classify`; its path."""
        link, device, _ = self._connected()
        header = CaptureHeader(
            device.name, device.serial, frame.counter, when, link.profile.laser_nm, frame.integration_us, frame.saturated,
            self.transport.dark is not None,
        )
        return self.session.save_capture(header.lines(), x, counts)

    # --- the loop -----------------------------------------------------------------------------

    def run(self, on_result: Callable[[Identification, dict], None], should_stop: Callable[[], bool], count: int | None = None) -> Stats:
        model = self._connected()[2].bundle.model_id
        try:
            while not should_stop():
                try:
                    frames = self.transport.frames()
                except DeviceLost:
                    if not self.transport.reconnect(should_stop):
                        break
                    self.stats.reconnects = self.transport.reconnects
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
