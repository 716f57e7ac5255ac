"""A live session, as ``listen`` and ``demo`` run it: the loop to the screen or stdout.

The CLI (:mod:`edge.cli`) parses arguments and prints errors; this module connects the pieces:
a :class:`~edge.listen.Listener` (transport -> raw pipeline -> classifier -> answer gate ->
session log) to either the live screen (:mod:`edge.live_view`) or JSON lines on stdout, and, for
the demo, the score of what the emulator played (the CLI builds the emulator: it is never in
``listen``'s import graph, a contract in pyproject.toml that CI checks).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from edge.identifier import Identifier
from edge.keys import keys_pressed, typed_line
from edge.library import twin_note
from edge.listen import Identification, Listener
from edge.live_view import DemoScore, render
from edge.user_library import UserLibraryError
from edge.web_view import WebView, pooled
from firmware_bridge.profiles import DeviceProfile


@dataclass(frozen=True)
class ListenConfig:
    """What a live session is asked to do: the port and how to speak to it (protocol ``auto``, ``frame``, ``ascii``
    or ``obp``; baud; a device profile), what to keep (the JSON-lines log, raw captures), how to show it (the live
    screen or JSON lines) and when to stop (after ``count`` identifications; None: until stopped)."""

    port: str
    protocol: str = "auto"
    baud: int | None = None
    profile: DeviceProfile | None = None
    log: Path | None = None
    save_spectra: Path | None = None
    as_json: bool = False
    count: int | None = None


class LiveSession:
    """One ``listen`` (or ``demo``) session: its config and an :class:`~edge.identifier.Identifier`, ready before
    any port opens (a bad log path or capture folder is a SessionLogError here)."""

    def __init__(self, config: ListenConfig, identifier: Identifier, web: WebView | None = None) -> None:
        self.config = config
        self.listener = Listener(config.port, identifier, config.protocol, config.baud, config.profile, config.log, config.save_spectra)
        self.web = web  #: the browser view (``--web``), started by the caller; told every answer and status change

    def run(
        self, stop: threading.Event, console: Console, say: Callable[[str], None], played: Callable[[int], str | None] | None = None
    ) -> DemoScore | None:
        """Connect (retried while no device answers), run until ``count`` identifications or ``stop``, close the port;
        the demo's score where ``played`` is given, else None. A missing port is a PortError."""
        web = self.web
        if web is not None:
            web.status(link_status(self.listener))
        try:
            if self.listener.connect_retrying(stop.is_set, say) is None:
                return None  # stopped while no device answered
            return run(self.listener, self.config.as_json, self.config.count, stop, console, say, played, web)
        finally:
            self.listener.close()
            if web is not None:
                web.status(link_status(self.listener))


def link_status(listener: Listener) -> dict[str, Any]:
    """The link's status and counters, as the web view shows them."""
    stats, device = listener.stats, listener.stats.device
    ok, rejected = listener.frame_counts()
    return {
        "status": stats.status,
        "connected": stats.status == "listening",
        "device": f"{device.name} ({device.serial})" if device else listener.port_name,
        "port": listener.port_name,
        "frames_ok": ok,
        "frames_rejected": rejected,
        "reconnects": stats.reconnects,
        "identifications": stats.identifications,
    }


def plot_of(result: Identification) -> dict[str, Any]:
    """The spectra the web view plots for an answer: measured, best reference, and the mixture's fitted sum."""
    mixture = result.answer.mixture
    return {
        "measured": pooled(result.spectrum),
        "reference": pooled(result.answer.reference),
        "fitted": pooled(mixture.fitted) if mixture is not None and len(mixture.components) > 1 else None,
    }


def run(
    listener: Listener,
    as_json: bool,
    count: int | None,
    stop: threading.Event,
    console: Console,
    say: Callable[[str], None],
    played: Callable[[int], str | None] | None = None,
    web: WebView | None = None,
) -> DemoScore | None:
    """Run a connected listener until ``count`` identifications or ``stop``; the demo's score, if ``played``.

    ``played`` (the demo): the mineral the emulator played for a frame counter, shown beside
    the answer with a running score and added to JSON lines as ``played``. ``web``: the browser view,
    handed every answer and status change (it never blocks this loop).
    """
    score = DemoScore() if played else None

    def status_changed(status: str) -> None:
        say(f"{listener.port_name}: {status}")  # stderr: a log of the link
        if web is not None:
            web.status(link_status(listener))

    listener.on_status_change = status_changed
    if web is not None:
        web.status(link_status(listener))

    def note(result, record) -> None:
        if score is not None and played is not None:
            record["played"] = played(result.seq)
            score.add(record["played"], result)
        if web is not None:
            web.publish(listener.stats.identifications, record, plot_of(result), lambda name: add_shown_spectrum(listener, result, name))
            web.status(link_status(listener))

    if as_json:
        device = listener.stats.device
        if device is not None:
            say(f"connected: {device.name} {device.serial} ({listener.protocol})" + "".join(f"; {note}" for note in device.notes))

        def emit(result, record):
            note(result, record)
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()

        listener.run(emit, stop.is_set, count)
        return score
    # The screen redraws itself (get_renderable) 8 times a second: a disconnected device shows at once, not at
    # the next answer. Transient, and a fresh one after the `a` prompt: a restarted Live would move up over the
    # prompt and its answer by the height it last drew. The last screen is printed once at the end.
    def screen() -> Live:
        return Live(console=console, refresh_per_second=8, transient=True, get_renderable=lambda: render(listener, score, console.width))

    with keys_pressed() as pressed:
        live = screen()
        live.start()

        def show(result, record):
            nonlocal live
            note(result, record)
            live.refresh()
            if "a" in pressed():
                live.stop()
                with typed_line():
                    try:
                        name = console.input("mineral name for the spectrum shown (empty: cancel): ")
                    except EOFError:  # stdin closed under us: nothing typed
                        name = ""
                say(add_shown_spectrum(listener, result, name))
                live = screen()
                live.start()

        try:
            listener.run(show, stop.is_set, count)
        finally:
            live.stop()
    console.print(render(listener, score, console.width))
    return score


def add_shown_spectrum(listener: Listener, result: Identification, name: str) -> str:
    """Add the spectrum of ``result`` to the user library as ``name``; the line to show."""
    identifier = listener.identifier
    if not name.strip():
        return "not added"
    if result.spectrum is None:
        return f"not added: {result.state}, no spectrum to keep"
    source = result.capture.name if result.capture else f"{listener.port_name} frame {result.seq} at {result.time}"
    note = twin_note(identifier.bundle_library, result.spectrum, name)
    try:
        entry = identifier.add_to_user_library(name, result.spectrum, source)
    except (UserLibraryError, OSError) as exc:
        return f"not added: {exc}"
    return f"added {entry.id}: {entry.mineral} to {identifier.user_library.path if identifier.user_library else ''}{note}"
