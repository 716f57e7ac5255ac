"""``ramanedge``: the field side of ramanedge (no TensorFlow is imported here)."""

from __future__ import annotations

import enum
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge.answer import ADVICE
from edge.bundle import Bundle, BundleError, load_bundle
from edge.capture import saturated
from edge.cli_support import LaserOption, errors, say, version_option
from edge.cli_support import fail as _fail
from edge.library_cli import LibraryOption, library_app, open_user_library
from edge.model_input import read_model_input as _read
from edge.spectrum_files import SpectrumFileError
from ramancore.preprocessing import GRID

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()

ModelOption = Annotated[Path | None, typer.Option("--model", "-m", help="model bundle folder (default: the bundled model)")]
ConfidenceOption = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="fused confidence from which an answer is 'identified' (default: the bundle's calibrated threshold)"),
]
MixturesOption = Annotated[
    bool,
    typer.Option("--mixtures", help="also fit each spectrum as a sum of up to three library minerals, with each one's share of the signal (not a composition)"),
]
WebOption = Annotated[
    str | None,
    typer.Option(
        "--web", metavar="[HOST:]PORT",
        help="also serve the live view to a browser: 8765 (this computer only) or 0.0.0.0:8765 (the network); the URL with its token is printed once",
    ),
]
QrOption = Annotated[bool, typer.Option("--qr", help="with --web: print the URL as a QR code too, for a phone's camera")]
app.add_typer(library_app, name="library")



class WireProtocol(enum.StrEnum):
    """The wire protocols the edge speaks (``--protocol`` accepts any letter case)."""

    frame = "frame"
    ascii = "ascii"
    obp = "obp"


class ListenProtocol(enum.StrEnum):
    """``listen --protocol``: a wire protocol, or ``auto`` to try them in turn."""

    auto = "auto"
    frame = "frame"
    ascii = "ascii"
    obp = "obp"


@app.callback()
def main(version: Annotated[bool, version_option("ramanedge")] = False) -> None:
    """Mineral identification from Raman spectra on a field computer."""


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="RRUFF text or two-column CSV/TXT spectrum files")],
) -> None:
    """Read and preprocess spectrum files as the device would; say what each one holds or what is wrong."""
    table = Table(box=box.SIMPLE_HEAD)  # no vertical rules: the columns fit an 80-column terminal
    table.add_column("file", overflow="fold", min_width=16, ratio=1)  # the name matters most: never squeezed to a few letters
    for column in ("mineral", "RRUFF id", "laser nm", "points", "cm^-1 (on the model grid)"):
        table.add_column(column, overflow="fold")
    bad = 0
    for path in files:
        try:
            spectrum = _read(path).spectrum
        except SpectrumFileError as exc:
            bad += 1
            errors.print(f"[red]bad file[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        lo, hi = max(spectrum.x.min(), GRID[0]), min(spectrum.x.max(), GRID[-1])
        table.add_row(
            path.name,
            spectrum.mineral or "?",
            spectrum.rruff_id or "?",
            f"{spectrum.laser_nm:g}" if spectrum.laser_nm else "?",
            str(spectrum.x.size),
            f"{spectrum.x.min():.0f}..{spectrum.x.max():.0f} ({lo:.0f}..{hi:.0f})",
        )
    if table.row_count:
        console.print(table)
    if bad:
        errors.print(f"{bad} of {len(files)} files unusable", highlight=False)
        raise typer.Exit(1)


@app.command()
def classify(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="RRUFF text or two-column CSV/TXT spectrum files")],
    model: ModelOption = None,
    top: Annotated[int, typer.Option(min=1, help="how many minerals to list per spectrum (at most the model's classes)")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line instead of tables")] = False,
    threads: Annotated[int | None, typer.Option(help="interpreter threads (default: all cores)")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="files hold raw counts in Raman shift: remove spikes and baseline first")] = False,
    confidence: ConfidenceOption = None,
    library: LibraryOption = None,
    laser: Annotated[float | None, LaserOption] = None,
    mixtures: MixturesOption = False,
) -> None:
    """Identify the mineral of each spectrum file with the model and the libraries; each gets the state `listen` would give it."""
    from edge.identifier import Identifier
    from edge.runtime import RuntimeUnavailable

    try:
        bundle = load_bundle(model)
        identifier = Identifier(bundle, open_user_library(library), num_threads=threads, confidence=confidence, mixtures=mixtures)
    except (BundleError, RuntimeUnavailable) as exc:
        _fail(str(exc))
    if top > len(identifier.matcher.candidates):
        _fail(f"--top {top}: the model and libraries know {len(identifier.matcher.candidates)} minerals")
    bad = 0
    for path in files:
        try:
            read = _read(path, raw, laser)
        except SpectrumFileError as exc:
            bad += 1
            errors.print(f"[red]bad file[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        if read.cleaned_note:
            errors.print(read.cleaned_note, highlight=False, soft_wrap=True)
        answer = identifier.answer(read.y, read.vector, saturated=saturated(read.spectrum.header), k=top)  # a capture says so
        if as_json:
            record = answer.record(str(path), bundle.model_id)
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
            continue
        head = f"[bold]{escape(str(path))}[/bold]  {answer.state}"
        if answer.group:
            head += f"  {answer.named}"
        if answer.confidence is not None:
            head += f"  confidence {answer.confidence:.2f}  ({answer.latency_ms:.1f} ms)"
        console.print(head, highlight=False, soft_wrap=True)
        if answer.state in ADVICE:
            console.print(ADVICE[answer.state], highlight=False)
        if answer.library_hit:
            hit = answer.library_hit
            console.print(f"best library hit: {hit['mineral']} ({hit['id']}, {hit['source']}) HQI {hit['hqi']:.0f}", highlight=False)
        if answer.top:
            table = Table()
            table.add_column("#", justify="right")
            table.add_column("mineral")
            table.add_column("confidence", justify="right")
            for rank, (mineral, probability) in enumerate(answer.top, start=1):
                table.add_row(str(rank), mineral, f"{probability:.3f}")
            console.print(table)
        if answer.mixture is not None:
            console.print(answer.mixture.summary(), highlight=False, soft_wrap=True)
    if bad:
        errors.print(f"{bad} of {len(files)} files unusable", highlight=False)
        raise typer.Exit(1)


@app.command()
def info(
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="the manifest as JSON")] = False,
) -> None:
    """The model bundle's manifest and which TFLite runtime loads it."""
    from edge.runtime import RuntimeUnavailable, interpreter_class

    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        _fail(str(exc))
    try:
        _, runtime = interpreter_class()
    except RuntimeUnavailable as exc:
        runtime = f"none ({exc})"
    if as_json:
        sys.stdout.write(json.dumps({**bundle.manifest.as_dict(), "bundle": str(bundle.path), "runtime": runtime}, indent=2) + "\n")
        return
    table = Table(show_header=False, title=f"model bundle {bundle.path}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    size = sum(path.stat().st_size for path in bundle.member_paths) / 1e6
    rows = [("runtime", runtime), ("model", f"{bundle.model_id} ({size:.2f} MB)"), *bundle.manifest.summary_rows()]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for sentence in bundle.manifest.trust_sentences():
        console.print(sentence, highlight=False)


def _play_list(bundle: Bundle, files: list[Path]) -> list[tuple[str, np.ndarray]]:
    """Spectra for the emulator to play: the RRUFF files given, else the bundle's demo spectra."""
    if not files:
        return bundle.demo_spectra()
    library = []
    for path in files:
        try:
            read = _read(path)
        except SpectrumFileError as exc:
            _fail(str(exc))
        library.append((read.spectrum.mineral or path.stem, read.vector))
    return library


def _emulator(bundle: Bundle, files: list[Path], protocol: str, profile_name: str | None, interval: float, faults, seed: int, link_path: Path | None):
    """The virtual spectrometer `emulate` and `demo` run, or one line saying what is wrong."""
    from firmware_bridge.emulator import Emulator
    from firmware_bridge.profiles import DEFAULT_PROFILES, ProfileError, load_profile

    try:
        profile = load_profile(profile_name or DEFAULT_PROFILES[protocol])
    except ProfileError as exc:
        _fail(str(exc))
    return Emulator(
        profile, _play_list(bundle, files), GRID, protocol=protocol, interval_s=interval, faults=faults, seed=seed, link_path=link_path
    )


Protocol = Annotated[WireProtocol, typer.Option(case_sensitive=False, help="wire protocol: frame, ascii or obp")]
Profile = Annotated[str | None, typer.Option(help="device profile: a bundled name (emulator-785, emulator-532, c12880ma-ascii, ocean-sts-785) or a TOML file")]
Interval = Annotated[float, typer.Option(help="emulator: seconds between streamed frames")]
Garbage = Annotated[float, typer.Option(help="emulator fault: probability of garbage bytes before a frame")]
Bitflip = Annotated[float, typer.Option(help="emulator fault: probability of a flipped bit in a frame")]
Truncate = Annotated[float, typer.Option(help="emulator fault: probability of a truncated frame")]
Stall = Annotated[float, typer.Option(help="emulator fault: probability of a 1.5 s stall before a frame")]
UnplugEvery = Annotated[float, typer.Option(help="emulator fault: unplug for 1 s every this many seconds (0: never)")]
Seed = Annotated[int, typer.Option(help="emulator: seed of the noise and the faults")]
SpectraArg = Annotated[list[Path] | None, typer.Argument(metavar="FILE", help="RRUFF files to play (default: minerals from the bundle's reference library)")]


def _stop_on_signals() -> threading.Event:
    """Ctrl-C and SIGTERM end the run cleanly: the loops poll this event."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command()
def emulate(
    spectra: SpectraArg = None,
    model: ModelOption = None,
    link: Annotated[Path | None, typer.Option(help="a stable symlink to the pseudo-terminal, kept across unplugs")] = None,
    protocol: Protocol = WireProtocol.frame,
    profile: Profile = None,
    interval: Interval = 0.3,
    garbage: Garbage = 0.0,
    bitflip: Bitflip = 0.0,
    truncate: Truncate = 0.0,
    stall: Stall = 0.0,
    unplug_every: UnplugEvery = 0.0,
    seed: Seed = 0,
) -> None:
    """A virtual spectrometer on a pseudo-terminal: prints its path first, runs until stopped."""
    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        _fail(str(exc))
    from firmware_bridge.emulator import Faults

    faults = Faults(garbage, bitflip, truncate, stall, unplug_every_s=unplug_every)
    emulator = _emulator(bundle, spectra or [], protocol.value, profile, interval, faults, seed, link)
    stop = _stop_on_signals()
    print(emulator.start(), flush=True)
    errors.print(f"{emulator.profile.name}, {protocol.value} protocol, playing {len(emulator.library)} spectra; Ctrl-C to stop", highlight=False)
    stop.wait()
    emulator.stop()
    errors.print(f"sent {len(emulator.played)} spectra, {sum(1 for p in emulator.played if p.faulted)} with a fault", highlight=False)


def _web_view(address: str | None, qr: bool):
    """The started web view for ``--web`` (None without it), its URL printed once; errors in one line."""
    if address is None:
        return None
    from edge.web_view import WebView, WebViewError, parse_address

    try:
        host, port = parse_address(address)
        web = WebView(host, port, say=say)
        url = web.start()
    except (ValueError, WebViewError) as exc:
        _fail(str(exc))
    errors.print(f"web view: {url}" + ("  (anyone on this network with the URL can see answers and add to the library)" if host in ("0.0.0.0", "::") else ""), highlight=False, soft_wrap=True)
    if qr:
        import qrcode

        code = qrcode.QRCode(border=1)
        code.add_data(url)
        code.print_ascii(out=sys.stderr)
    return web


def _listen(config, bundle: Bundle, confidence: float | None, library: Path | None, stop: threading.Event, played=None, mixtures: bool = False, web=None):
    """Run one live session (the live screen or JSON lines) and return it with the demo score; errors in one line.

    ``played`` (the demo): the mineral the emulator played for a frame counter, shown beside
    the answer with a running score and added to JSON lines as ``played``.
    """
    from edge.identifier import Identifier
    from edge.listen import PortError
    from edge.runtime import RuntimeUnavailable
    from edge.session import LiveSession
    from edge.session_log import SessionLogError

    try:  # the model and the libraries load before any port is opened: a bad bundle never holds the device
        identifier = Identifier(bundle, open_user_library(library) if library or played is None else None, confidence=confidence, mixtures=mixtures)
        live = LiveSession(config, identifier, web)
    except (BundleError, RuntimeUnavailable, SessionLogError) as exc:
        _fail(str(exc))
    try:
        score = live.run(stop, console, say, played)
    except PortError as exc:
        _fail(str(exc))
    finally:
        if web is not None:
            web.stop()
    return live, score


def _profile(name: str | None):
    from firmware_bridge.profiles import ProfileError, load_profile

    try:
        return load_profile(name) if name else None
    except ProfileError as exc:
        _fail(str(exc))


@app.command()
def listen(
    port: Annotated[str, typer.Argument(metavar="PORT", help="serial port of the spectrometer, e.g. /dev/ttyUSB0")],
    protocol: Annotated[ListenProtocol, typer.Option(case_sensitive=False, help="auto, frame, ascii or obp")] = ListenProtocol.auto,
    baud: Annotated[int | None, typer.Option(help="baud rate (default: the profile's)")] = None,
    profile: Profile = None,
    model: ModelOption = None,
    log: Annotated[Path | None, typer.Option(help="append every identification to this JSON-lines file (fsynced)")] = None,
    save_spectra: Annotated[Path | None, typer.Option(help="keep every raw frame here, as CSV in Raman shift")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON line per identification instead of the live screen")] = False,
    count: Annotated[int | None, typer.Option(help="stop after this many identifications")] = None,
    confidence: ConfidenceOption = None,
    library: LibraryOption = None,
    mixtures: MixturesOption = False,
    web: WebOption = None,
    qr: QrOption = False,
) -> None:
    """Identify minerals live from a spectrometer on a serial port (on the live screen, `a` adds the spectrum shown to the user library)."""
    stop = _stop_on_signals()  # first: Ctrl-C while the bundle loads ends as cleanly as later
    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        _fail(str(exc))
    from edge.session import ListenConfig

    config = ListenConfig(port, protocol.value, baud, _profile(profile), log, save_spectra, as_json, count)
    live, _ = _listen(config, bundle, confidence, library, stop, mixtures=mixtures, web=_web_view(web, qr))
    s = live.listener.stats
    errors.print(
        f"{s.identifications} identifications; frames ok {s.frames_ok}, rejected {s.frames_rejected}; reconnects {s.reconnects}",
        highlight=False,
    )


@app.command()
def demo(
    spectra: SpectraArg = None,
    model: ModelOption = None,
    count: Annotated[int, typer.Option(help="stop after this many identifications (0: run until Ctrl-C)")] = 30,
    protocol: Protocol = WireProtocol.frame,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of the live screen")] = False,
    interval: Interval = 0.3,
    garbage: Garbage = 0.02,
    bitflip: Bitflip = 0.02,
    truncate: Truncate = 0.0,
    stall: Stall = 0.0,
    unplug_every: UnplugEvery = 0.0,
    seed: Seed = 0,
    library: Annotated[Path | None, typer.Option("--library", help="a user library to search too (default: none, so that the demo is the same everywhere)")] = None,
    mixtures: MixturesOption = False,
    web: WebOption = None,
    qr: QrOption = False,
) -> None:
    """The emulated spectrometer and `listen` on it, with the bundled model: no hardware needed."""
    stop = _stop_on_signals()
    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        _fail(str(exc))
    from firmware_bridge.emulator import Faults

    faults = Faults(garbage, bitflip, truncate, stall, unplug_every_s=unplug_every)
    with tempfile.TemporaryDirectory(prefix="ramanedge-demo-") as tmp:
        emulator = _emulator(bundle, spectra or [], protocol.value, None, interval, faults, seed, Path(tmp) / "spectrometer")
        port = emulator.start()

        def played(seq: int) -> str | None:
            return next((p.mineral for p in reversed(emulator.played) if p.counter == seq), None)

        try:
            from edge.session import ListenConfig

            config = ListenConfig(port, protocol.value, as_json=as_json, count=count or None)
            live, score = _listen(config, bundle, None, library, stop, played, mixtures, _web_view(web, qr))
        finally:
            emulator.stop()
    if score is None:
        _fail("demo stopped before the emulated spectrometer answered")
    s = live.listener.stats
    unnamed = [
        f"{n} {state}" + (" (the emulated detector clipped a bright spectrum: no injected fault)" if state == "saturated" else "")
        for state, n in sorted(score.states.items())
        if state in ("saturated", "signal too weak")
    ]
    errors.print(
        f"demo: {len(emulator.played)} spectra sent ({sum(1 for p in emulator.played if p.faulted)} with an injected fault), "
        f"frames ok {s.frames_ok}, rejected {s.frames_rejected}; {score.total} identifications, "
        f"top-1 = mineral played for {score.right} of {score.named} named" + (f"; not named: {', '.join(unnamed)}" if unnamed else ""),
        highlight=False,
    )
