"""``ramanedge``: the field side of ramanedge (no TensorFlow is imported here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from edge.bundle import BundleError, load_bundle
from edge.preprocessing import GRID, PreprocessingError, preprocess
from edge.spectrum_files import SpectrumFileError, read_spectrum_file

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)

ModelOption = Annotated[Optional[Path], typer.Option("--model", "-m", help="model bundle folder (default: the bundled model)")]


def _fail(message: str, code: int = 1) -> None:
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _read(path: Path):
    """Spectrum and its model input, or a one-line reason naming the file."""
    spectrum = read_spectrum_file(path)
    try:
        return spectrum, preprocess(spectrum.x, spectrum.y)
    except PreprocessingError as exc:
        raise SpectrumFileError(str(path), str(exc)) from None


@app.callback()
def main() -> None:
    """Mineral identification from Raman spectra on a field computer."""


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="RRUFF text or two-column CSV/TXT spectrum files")],
) -> None:
    """Read and preprocess spectrum files as the device would; say what each one holds or what is wrong."""
    table = Table()
    table.add_column("file", overflow="fold")
    for column in ("mineral", "RRUFF id", "laser nm", "points", "range cm^-1", "on model grid"):
        table.add_column(column, no_wrap=True)
    bad = 0
    for path in files:
        try:
            spectrum, _ = _read(path)
        except SpectrumFileError as exc:
            bad += 1
            errors.print(f"[red]bad file[/red] {exc}", highlight=False, soft_wrap=True)
            continue
        lo, hi = max(spectrum.x.min(), GRID[0]), min(spectrum.x.max(), GRID[-1])
        table.add_row(
            path.name,
            spectrum.mineral or "?",
            spectrum.rruff_id or "?",
            f"{spectrum.laser_nm:g}" if spectrum.laser_nm else "?",
            str(spectrum.x.size),
            f"{spectrum.x.min():.1f}..{spectrum.x.max():.1f}",
            f"{lo:.0f}..{hi:.0f}",
        )
    if table.row_count:
        console.print(table)
    if bad:
        errors.print(f"{bad} of {len(files)} files unusable", highlight=False)
        raise typer.Exit(1)


@app.command()
def classify(
    files: Annotated[list[Path], typer.Argument(help="RRUFF text or two-column CSV/TXT spectrum files")],
    model: ModelOption = None,
    top: Annotated[int, typer.Option(help="how many minerals to list per spectrum")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line instead of tables")] = False,
    threads: Annotated[Optional[int], typer.Option(help="interpreter threads (default: all cores)")] = None,
) -> None:
    """Identify the mineral of each spectrum file with the model bundle."""
    from edge.runtime import Classifier, RuntimeUnavailable

    try:
        bundle = load_bundle(model)
        classifier = Classifier(bundle, num_threads=threads)
    except (BundleError, RuntimeUnavailable) as exc:
        _fail(str(exc))
    bad = 0
    for path in files:
        try:
            _, vector = _read(path)
        except SpectrumFileError as exc:
            bad += 1
            errors.print(f"[red]bad file[/red] {exc}", highlight=False, soft_wrap=True)
            continue
        prediction = classifier.classify(vector, k=top)
        if as_json:
            record = {
                "file": str(path),
                "top": [{"mineral": m, "probability": round(p, 6)} for m, p in prediction.top],
                "model": bundle.model_id,
                "latency_ms": round(prediction.latency_ms, 3),
            }
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
            continue
        console.print(f"[bold]{path}[/bold]  ({prediction.latency_ms:.1f} ms)", highlight=False, soft_wrap=True)
        table = Table()
        table.add_column("#", justify="right")
        table.add_column("mineral")
        table.add_column("probability", justify="right")
        for rank, (mineral, probability) in enumerate(prediction.top, start=1):
            table.add_row(str(rank), mineral, f"{probability:.3f}")
        console.print(table)
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
        sys.stdout.write(json.dumps({**bundle.manifest, "bundle": str(bundle.path), "runtime": runtime}, indent=2) + "\n")
        return
    m = bundle.manifest
    table = Table(show_header=False, title=f"model bundle {bundle.path}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("runtime", runtime),
        ("model", f"{bundle.model_id} ({bundle.model_path.stat().st_size / 1e6:.2f} MB)"),
        ("classes", str(m["n_classes"])),
        ("input", f"{m['input']['dtype']} {m['input']['shape']} scale {m['input']['scale']:.3g} zero point {m['input']['zero_point']}"),
        ("trained on", f"{m['training']['dataset']} ({m['training']['protocol']} split, width {m['training']['width']})"),
        ("trained with", m["training"]["device"]),
    ]
    for name, scores in m.get("metrics", {}).items():
        if isinstance(scores, dict):
            rows.append((f"test {name}", f"top-1 {scores['top1']:.4f}  top-3 {scores['top3']:.4f}"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
