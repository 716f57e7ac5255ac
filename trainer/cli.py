"""``trainer``: prepare RRUFF data, fit the paper's CNN, evaluate it, repeat it over splits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the screen

import typer  # noqa: E402
from rich.console import Console
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from edge.bundle import BundleError  # noqa: E402
from edge.cli_support import errors, version_option  # noqa: E402
from edge.cli_support import fail as _fail  # noqa: E402
from edge.spectrum_files import SpectrumFileError  # noqa: E402
from trainer.errors import TrainerError  # noqa: E402
from trainer.sources import collect  # noqa: E402

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()

#: Errors that are the user's input, not our bug: one line, no traceback. Anything else is a bug
#: and keeps its traceback.
EXPECTED = (TrainerError, SpectrumFileError, BundleError, OSError)


@app.callback()
def main(version: Annotated[bool, version_option("trainer (ramanedge)")] = False) -> None:
    """Prepare RRUFF data, fit the paper's CNN or the compact one, evaluate, repeat, export."""


@app.command()
def prepare(
    sources: Annotated[list[Path], typer.Argument(metavar="SOURCE", help="RRUFF files, zip archives, folders (the paper's layout too) or the published .npz")],
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset file to write (.npz)")],
    min_per_class: Annotated[int, typer.Option(help="keep classes with at least this many spectra (10 = Dataset_1)")] = 1,
    strict: Annotated[bool, typer.Option(help="stop at the first unusable file instead of skipping it")] = False,
    raw: Annotated[str, typer.Option(help="RRUFF RAW files: skip (reported) or clean (spike and baseline removal, as on the device)")] = "skip",
) -> None:
    """Read, check and preprocess spectra into a dataset file."""
    try:
        dataset, report = collect(
            sources, strict=strict, raw=raw, on_skip=lambda line: errors.print(f"skipped {escape(line)}", highlight=False, soft_wrap=True)
        )
    except EXPECTED as exc:
        _fail(str(exc))
    dataset.meta["sources"] = [str(s) for s in sources]
    full = dataset.summary()
    dataset = dataset.with_min_per_class(min_per_class)
    digest = dataset.save(out)
    console.print(
        f"read {report.used + len(report.skipped)} spectra: {report.used} used "
        f"({report.kept_as_published} already on the model grid), {len(report.skipped)} skipped"
    )
    console.print(f"all: {full}; with >= {min_per_class} per class: {dataset.summary()}")
    console.print(f"wrote {out} (sha256 {digest[:16]}…)")


DatasetArg = Annotated[Path, typer.Argument(metavar="DATASET", help="dataset file from `trainer prepare`")]
Seed = Annotated[int, typer.Option(help="seed of the split, the initial weights and the batch order")]
Arch = Annotated[str, typer.Option(help="sang2021 (the paper's Table 2 network), resnet1d (compact, for the CPU), liu2017 or fan2019 (the paper's Table 3)")]
Width = Annotated[float, typer.Option(help="scale of every layer's width; 1.0 is the paper's network")]
BatchSize = Annotated[int, typer.Option(help="batch size")]
LearningRate = Annotated[float, typer.Option(help="Adam learning rate (the paper's: 1e-4)")]
Schedule = Annotated[str, typer.Option(help="learning rate: constant (the paper's) or cosine (decays to 0 over --epochs)")]
LabelSmoothing = Annotated[float, typer.Option(help="label smoothing of the cross-entropy (the paper's: 0)")]
Quiet = Annotated[bool, typer.Option(help="no progress bars")]
ExtraTrain = Annotated[
    Path | None,
    typer.Option(help="the fair/poor set (rruff_fair_poor_d2.tar.xz): its processed files of the specimens the run trains on join its training data"),
]


@app.command(name="fit")
def fit_command(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder to write")],
    split: Annotated[str, typer.Option(help="random (the paper's), grouped (by RRUFF specimen), all (every spectrum in training: the production fit; no early stopping) or open (a fifth of the minerals held out as unknown: trainer openset)")] = "random",
    seed: Seed = 0,
    arch: Arch = "sang2021",
    width: Width = 1.0,
    epochs: Annotated[int, typer.Option(help="most epochs")] = 200,
    patience: Annotated[int, typer.Option(help="early-stopping patience on validation accuracy")] = 30,
    batch_size: BatchSize = 32,
    learning_rate: LearningRate = 1e-4,
    schedule: Schedule = "constant",
    label_smoothing: LabelSmoothing = 0.0,
    augment: Annotated[str, typer.Option(help="none, physical (trainer/augment.py), physical-no-NAME, or physical,key=value,...")] = "none",
    bn_momentum: Annotated[float, typer.Option(help="BatchNorm moving-average momentum (Keras' default 0.99 lags on RRUFF-sized runs)")] = 0.9,
    init_from: Annotated[Path | None, typer.Option(help="start from this run's weights (same dataset, split, seed and width)")] = None,
    extra_train: ExtraTrain = None,
    init_seed: Annotated[int | None, typer.Option(help="seed of the initial weights, batches and augmentation, if not --seed (ensemble members on one split)")] = None,
    extra_kinds: Annotated[str, typer.Option(help="with --extra-train: processed, or processed,raw (RAW files through the device's raw pipeline)")] = "processed",
    contrastive: Annotated[float, typer.Option(help="weight of a supervised contrastive loss across specimens beside the cross-entropy (resnet1d; batches of --batch-size / 4 minerals x 4 spectra); 0: none")] = 0.0,
    extra_repeat: Annotated[int, typer.Option(help="with --extra-train: how many times each fair/poor file joins the training data")] = 1,
    early_stopping: Annotated[
        bool, typer.Option(help="stop on validation accuracy and keep its best epoch; --no-early-stopping: every epoch, the last kept (as --split all)")
    ] = True,
    quiet: Quiet = False,
) -> None:
    """Train the paper's CNN (Adam 1e-4, cross-entropy, early stopping) and evaluate it."""
    _use_fastest_backend()
    from trainer.evaluation import evaluate
    from trainer.training import FitConfig, fit

    try:
        config = FitConfig(
            protocol=split, seed=seed, arch=arch, width=width, epochs=epochs, patience=patience, batch_size=batch_size,
            bn_momentum=bn_momentum, learning_rate=learning_rate, schedule=schedule, label_smoothing=label_smoothing,
            augment=augment, init_from=str(init_from) if init_from else None, extra_train=str(extra_train) if extra_train else None, init_seed=init_seed,
            extra_kinds=extra_kinds, contrastive=contrastive, extra_repeat=extra_repeat, early_stopping=early_stopping,
        )
        run = fit(dataset, out, config, quiet=quiet)
        if config.protocol == "all":
            console.print(f"run written to {run} (every spectrum in training: no test part; its figures are the grouped runs')")
            return
        record = evaluate(run)
    except EXPECTED as exc:
        _fail(str(exc))
    _print_metrics(record)
    console.print(f"run written to {run}")


@app.command(name="evaluate")
def evaluate_command(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="run folder from `trainer fit`")],
    dataset: Annotated[Path | None, typer.Option(help="dataset file, if it moved since training")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="folder for the results (default: the run folder)")] = None,
    field_set: Annotated[Path | None, typer.Option(help="the fair/poor set for the grouped-fair figures (default: rruff_fair_poor_d2.tar.xz in $RAMANEDGE_DATA or ../shared/data)")] = None,
) -> None:
    """Table 3 metrics of a run on its test split, grouped-fair figures, per-class report and figures."""
    from trainer.evaluation import evaluate

    try:
        record = evaluate(run, dataset, out, field_set)
    except EXPECTED as exc:
        _fail(str(exc))
    _print_metrics(record)
    console.print(f"metrics.json, per_class.csv, training_curves.png, confusion_matrix.png in {out or run}")


@app.command(name="repeat")
def repeat_command(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="dataset file from `trainer prepare`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the runs and the summary (finished runs are skipped)")],
    n: Annotated[int, typer.Option("--n", help="splits per protocol")] = 5,
    protocols: Annotated[str, typer.Option(help="comma-separated: random,grouped")] = "random,grouped",
    seed: Annotated[int, typer.Option(help="first seed; run i uses seed + i")] = 0,
    arch: Arch = "sang2021",
    width: Annotated[float, typer.Option(help="scale of every layer's width; 1.0 is the paper's network")] = 1.0,
    epochs: Annotated[int, typer.Option(help="most epochs")] = 200,
    patience: Annotated[int, typer.Option(help="early-stopping patience on validation accuracy")] = 30,
    batch_size: BatchSize = 32,
    learning_rate: LearningRate = 1e-4,
    schedule: Schedule = "constant",
    label_smoothing: LabelSmoothing = 0.0,
    augment: Annotated[str, typer.Option(help="none, physical (trainer/augment.py), physical-no-NAME, or physical,key=value,...")] = "none",
    extra_train: ExtraTrain = None,
    executor: Annotated[str, typer.Option(help="local (one run after another, here) or ray (a Ray task per run)")] = "local",
    address: Annotated[str | None, typer.Option(help="ray: the cluster to join (default: start Ray on this machine)")] = None,
    summary_only: Annotated[
        bool, typer.Option("--summary-only", help="train nothing: summarise the finished run folders under --out, name the rest missing")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Train and evaluate N splits per protocol (resumable, locally or on Ray); mean ± std of every metric."""
    _use_fastest_backend()
    from rich.progress import Progress

    from trainer.repeat import DIVERGENCE_FACTOR, repeat
    from trainer.training import FitConfig

    try:
        base = FitConfig(
            seed=seed, arch=arch, width=width, epochs=epochs, patience=patience, batch_size=batch_size,
            learning_rate=learning_rate, schedule=schedule, label_smoothing=label_smoothing, augment=augment,
            extra_train=str(extra_train) if extra_train else None,
        )
    except EXPECTED as exc:
        _fail(str(exc))
    split_protocols = tuple(p.strip() for p in protocols.split(","))
    with Progress(console=console, disable=quiet) as bar:
        task = bar.add_task(f"{arch} runs", total=n * len(split_protocols))

        def progress(done: int, total: int, line: str) -> None:
            bar.update(task, completed=done)
            bar.console.print(line, highlight=False)

        try:
            summary = repeat(
                dataset, out, n, base, split_protocols, quiet=True, executor=executor, address=address, progress=progress,
                train=not summary_only,
            )
        except EXPECTED as exc:
            _fail(str(exc))
    table = Table(title=f"{arch}: {n} splits per protocol (mean ± std)")
    table.add_column("metric")
    for protocol in summary["summary"]:
        table.add_column(f"{protocol} ({len(summary['results'][protocol])} runs)", justify="right")
    for metric in next(iter(summary["summary"].values()), {}):
        table.add_row(metric, *(f"{s[metric]['mean']:.4f} ± {s[metric]['std']:.4f}" for s in summary["summary"].values()))
    console.print(table)
    if blown := [name for names in summary["diverged"].values() for name in names]:
        console.print(
            f"diverged in training (last epoch's loss over {DIVERGENCE_FACTOR:g} times its lowest; scored at an early epoch): {', '.join(blown)}",
            highlight=False, soft_wrap=True,
        )
    if summary["missing"]:
        errors.print(f"missing runs: {', '.join(f'{k} ({v})' for k, v in summary['missing'].items())}", highlight=False, soft_wrap=True)
    console.print(f"summary.json and repeat_boxplot.png in {out}")
    if summary["missing"]:
        raise typer.Exit(1)


@app.command(name="baseline")
def baseline_command(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for one JSON per (protocol, seed, baseline) and the summary; finished ones are reused")],
    n: Annotated[int, typer.Option("--n", help="splits per protocol")] = 5,
    protocols: Annotated[str, typer.Option(help="comma-separated: random,grouped")] = "random,grouped",
    baselines: Annotated[str, typer.Option(help="comma-separated, from: knn1, knn5, tree, forest, pca_svm_linear, pca_svm_rbf, correlation")] = "knn1,knn5,tree,forest,pca_svm_linear,pca_svm_rbf,correlation",
    seed: Annotated[int, typer.Option(help="first seed; split i uses seed + i (the CNN repeats' seeds)")] = 0,
    jobs: Annotated[int, typer.Option(help="parallel fits of each grid search (-1: every CPU; of the Ray cluster with --executor ray)")] = 1,
    executor: Annotated[str, typer.Option(help="local, or ray (the grid searches' fits through Ray's joblib backend)")] = "local",
    address: Annotated[str | None, typer.Option(help="ray: the cluster to join (default: start Ray on this machine)")] = None,
    beside: Annotated[list[Path] | None, typer.Option(help="a `trainer repeat` summary.json to draw beside the baselines (repeatable; labelled with the network, its width, the protocol, the runs and its folder's name, e.g. the device)")] = None,
    field_degraded: Annotated[
        bool, typer.Option("--field-degraded", help="complete finished results that lack field-degraded scores (each refitted with its chosen hyper-parameters, no grid search)")
    ] = False,
) -> None:
    """The paper's classic baselines (Fig. 7) and correlation library search, grid-searched inside the training part."""
    from trainer.baselines import repeat_runs, run_baselines

    extra: dict[str, list[dict[str, float]]] = {}
    for path in beside or []:
        try:
            extra.update(repeat_runs(path))
        except (OSError, ValueError, KeyError) as exc:
            _fail(f"{path}: not a `trainer repeat` summary ({exc})")
    try:
        summary = run_baselines(
            dataset, out, n, tuple(b.strip() for b in baselines.split(",")), tuple(p.strip() for p in protocols.split(",")),
            seed, jobs, log=lambda line: console.print(line, highlight=False), beside=extra, executor=executor, address=address,
            complete_field=field_degraded,
        )
    except EXPECTED as exc:
        _fail(str(exc))
    table = Table(title=f"baselines, {n} splits per protocol (mean ± std)")
    for column in ("baseline (protocol)", "accuracy", "F1 weighted", "top-3", "top-5", "field-degraded top-1"):
        table.add_column(column, justify="right")
    for key, s in summary["summary"].items():
        f = summary["field_degraded"].get(key)
        degraded = f"{f['top1']['mean']:.4f} ± {f['top1']['std']:.4f}" if f else "—"
        table.add_row(key, *(f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" for m in ("accuracy", "f1_weighted", "top3", "top5")), degraded)
    console.print(table)
    console.print(f"summary.json and baselines_boxplot.png in {out}")


@app.command(name="ablation")
def ablation_command(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the runs and ablation.json (finished runs are reused)")],
    split: Annotated[str, typer.Option(help="grouped (by RRUFF specimen, the protocol to choose on) or random")] = "grouped",
    seed: Seed = 0,
    arch: Arch = "resnet1d",
    width: Width = 1.0,
    epochs: Annotated[int, typer.Option(help="epochs per run")] = 30,
    batch_size: BatchSize = 64,
    learning_rate: LearningRate = 2e-3,
    schedule: Schedule = "cosine",
    label_smoothing: LabelSmoothing = 0.1,
    quiet: Quiet = False,
) -> None:
    """Physical augmentation with each perturbation switched off in turn: validation, test and field accuracy."""
    _use_fastest_backend()
    from trainer.ablation import ablation
    from trainer.training import FitConfig

    try:
        base = FitConfig(
            protocol=split, seed=seed, arch=arch, width=width, epochs=epochs, patience=epochs, batch_size=batch_size,
            learning_rate=learning_rate, schedule=schedule, label_smoothing=label_smoothing,
        )
        rows = ablation(dataset, out, base, quiet=quiet)
    except EXPECTED as exc:
        _fail(str(exc))
    table = Table(title=f"augmentation ablation, {split} split, seed {seed}")
    for column in ("variant", "best val top-1", "test top-1", "test top-3", "field-degraded top-1"):
        table.add_column(column, justify="right")
    for row, r in rows.items():
        table.add_row(row, *(f"{100 * r[k]:.2f}" for k in ("best_val_accuracy", "test_top1", "test_top3", "field_top1")))
    console.print(table)
    console.print(f"ablation.json and one run folder per variant in {out}")


@app.command(name="openset")
def openset_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="run folders from `trainer fit --split open` (one per seed)")],
    field_set: Annotated[Path | None, typer.Option(help="the fair/poor set (default: rruff_fair_poor_d2.tar.xz in $RAMANEDGE_DATA or ../shared/data)")] = None,
    pooled: Annotated[
        Path | None,
        typer.Option(help="also fit one evidence gate on the fit parts of all RUNs together and write its report here (JSON; `trainer export --evidence-gate` reads it)"),
    ] = None,
    input_smoothing: Annotated[
        float, typer.Option(metavar="CM1", min=0.0, help="the model input smoothing (cm^-1) of the bundle the gate will ship in (its manifest's input_smoothing; 0: none)")
    ] = 0.0,
    library_field_files: Annotated[
        bool,
        typer.Option("--library-field-files", help="the bundle's library will hold fair/poor files (`trainer export --library-field-files`): this run's holds its training specimens'"),
    ] = False,
    member: Annotated[
        list[Path] | None,
        typer.Option(metavar="RUN", help="a further run of the same open-set split, averaged with the one RUN as an ensemble bundle averages (repeatable)"),
    ] = None,
) -> None:
    """Open-set gates: identified right on new specimens of known minerals vs. fired on unknown minerals."""
    import json

    from trainer.open_set import pooled_gate_report

    if pooled is not None and pooled.exists():
        _fail(f"{pooled}: exists; the pooled gate's report is not written over a file")
    if member and (len(runs) > 1 or pooled is not None):
        _fail("--member makes one ensemble of the one RUN and its members; give one RUN and no --pooled")
    for run in runs:
        _openset_one(run, field_set, input_smoothing, library_field_files, list(member or []))
    if pooled is not None:
        try:
            report = pooled_gate_report(list(runs))
        except EXPECTED as exc:
            _fail(str(exc))
        pooled.write_text(json.dumps(report, indent=2) + "\n")
        for name, cell in report["per_run_test"].items():
            own = cell["own_fit_part"]
            own_text = f"; its own gate {100 * own['precision']:.1f} % right, {100 * own['coverage']:.1f} %, {100 * own['unknown_identified']:.1f} %" if own else ""
            p = cell["pooled"]
            console.print(
                f"{name} test part, pooled gate: {100 * p['precision']:.1f} % right at {100 * p['coverage']:.1f} % coverage, "
                f"{100 * p['unknown_identified']:.1f} % of unknowns identified{own_text}",
                highlight=False,
            )
        t = report["gates"]["evidence (logistic)"]["test"]
        console.print(
            f"pooled evidence gate ({report['run']}), each test part scored by a gate fitted without it: identified right "
            f"{100 * t['precision']:.1f} % at {100 * t['coverage']:.1f} % coverage, {100 * t['unknown_identified']:.1f} % of unknown "
            f"minerals' spectra identified; the gate fitted on every fit part: {pooled}",
            highlight=False,
        )


def _openset_one(run: Path, field_set: Path | None, smoothing_cm1: float = 0.0, library_field: bool = False, members: list[Path] | None = None) -> None:
    from trainer.open_set import MAX_UNKNOWN_IDENTIFIED, OPEN_SET, TARGET_PRECISION, open_set_report, report_names

    try:
        report = open_set_report(run, field_set, smoothing_cm1=smoothing_cm1, library_field=library_field, members=list(members or []))
    except EXPECTED as exc:
        _fail(str(exc))
    sizes = report["spectra"]
    table = Table(
        title=f"open-set test parts: {sizes['known_test']['all']} known-new spectra ({sizes['known_test']['fair_poor_files']} fair/poor files), "
        f"{sizes['unknown_test']['all']} of {report['unknown_minerals']['test']} unknown minerals; thresholds fitted for "
        f">= {100 * TARGET_PRECISION:.0f} % right, <= {100 * MAX_UNKNOWN_IDENTIFIED:.0f} % unknown identified"
    )
    for column in ("gate", "identified right", "coverage", "fair/poor: right, coverage", "unknown identified"):
        table.add_column(column, justify="right")
    for name, figures in report["gates"].items():
        t = figures["test"]
        table.add_row(
            name, f"{100 * t['precision']:.1f} %", f"{100 * t['coverage']:.1f} %",
            f"{100 * t['fair_precision']:.1f} %, {100 * t['fair_coverage']:.1f} %", f"{100 * t['unknown_identified']:.1f} %",
        )
    console.print(table)
    console.print(
        f"known-new top-1 (fused) {100 * report['known_test_top1']:.1f} %, group level {100 * report['known_test_group_top1']:.1f} % "
        f"({report['groups']} groups; an answer is right where it holds the mineral); "
        f"{run / report_names([m.name for m in members or []])[OPEN_SET]}",
        highlight=False,
    )


@app.command(name="mixtures")
def mixtures_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="grouped run folders (`trainer fit --split grouped`), one per split")],
    count: Annotated[int, typer.Option(min=10, help="mixtures (and pure excellent spectra) of each kind per run")] = 300,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the reports and their summary here (JSON)")] = None,
    field_set: Annotated[Path | None, typer.Option(help="the fair/poor set (default: rruff_fair_poor_d2.tar.xz in $RAMANEDGE_DATA or ../shared/data)")] = None,
) -> None:
    """Mixture fit on new specimens: binary and ternary sums named, and no second mineral invented in pure spectra."""
    import json

    from trainer.mixtures import ROWS, THRESHOLDS, mixture_report, summarise

    try:
        reports = [mixture_report(run, field_set, count=count, seed=i) for i, run in enumerate(runs)]
    except EXPECTED as exc:
        _fail(str(exc))
    summary = summarise(reports)
    if out is not None:
        out.write_text(json.dumps({"reports": reports, "summary": summary}, indent=1) + "\n")
    fitted = "; ".join(f"{name} " + ", ".join(f"{g:.3f}" for g in summary[name]) for name in THRESHOLDS)
    table = Table(title=f"mixture fit on the test parts of {len(runs)} grouped split(s), mean ± sd; thresholds fitted on validation spectra: {fitted}")
    table.add_column("spectra")
    for column in ("n", "all named", "precision", "recall", "more components than true", "share error", "fit ms"):
        table.add_column(column, justify="right")
    for key, label in ROWS:
        cell = summary[key]
        if not cell:
            continue

        def pct(name: str, cell: dict = cell) -> str:
            mean, sd = cell[name]
            return f"{100 * mean:.1f} ± {100 * sd:.1f} %"

        fit_ms = f"{cell['fit_ms'][0]:.1f}" if "fit_ms" in cell else ""
        share = f"{cell['share_mae'][0]:.3f}" if cell["share_mae"][0] == cell["share_mae"][0] else "-"
        table.add_row(label, f"{cell['spectra'][0]:.0f}", pct("all_named"), pct("precision"), pct("recall"), pct("more_components_than_true"), share, fit_ms)
    console.print(table)


@app.command(name="export")
def export_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="run folder from `trainer fit`; several runs of one split: an ensemble whose probabilities the device averages")],
    out: Annotated[Path, typer.Option("--out", "-o", help="bundle folder to write")],
    int8: Annotated[bool, typer.Option("--int8", help="full-integer int8 model (default)")] = False,
    float16: Annotated[bool, typer.Option("--float16", help="float16 weights")] = False,
    float32: Annotated[bool, typer.Option("--float32", help="plain float32")] = False,
    dataset: Annotated[Path | None, typer.Option(help="dataset file, if it moved since training")] = None,
    other_protocol_run: Annotated[
        list[Path] | None,
        typer.Option(help="the same recipe trained on the other split protocol (repeat it for an ensemble's members): scored too, its metrics recorded in the manifest, a grouped run's calibration shipped"),
    ] = None,
    evidence_gate: Annotated[
        Path | None, typer.Option(help="ship the evidence gate of this open-set run (or its open_set.json, or a pooled gate's report: `trainer openset --pooled`)")
    ] = None,
    input_smoothing: Annotated[
        float | None,
        typer.Option(metavar="CM1", min=0.0, help="smooth each model input over this window (cm^-1, Savitzky-Golay; 0: off); default: fitted on validation (a run on every spectrum: its grouped twin's)"),
    ] = None,
    library_field_files: Annotated[
        bool,
        typer.Option("--library-field-files", help="the fair/poor set's processed files of the training specimens join the library (never a validation or test specimen's)"),
    ] = False,
) -> None:
    """Export a run (or an ensemble of runs) as a TFLite model bundle for the edge, scored on the run's test split."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the TFLite converter needs it; JAX-trained weights load here
    chosen = [name for name, flag in (("int8", int8), ("float16", float16), ("float32", float32)) if flag]
    if len(chosen) > 1:
        _fail("choose one of --int8, --float16, --float32")
    from trainer.export import ExportError, export

    try:
        manifest = export(
            list(runs), out, chosen[0] if chosen else "int8", dataset, log=lambda line: console.print(line, highlight=False),
            other_protocol_runs=list(other_protocol_run or []), evidence_gate=evidence_gate, input_smoothing_cm1=input_smoothing,
            library_field=library_field_files,
        )
    except (ExportError, *EXPECTED) as exc:
        _fail(str(exc))
    metrics = manifest.metrics
    precision = manifest.precision
    if precision != "float32":
        change = 100 * (metrics[precision]["top1"] - metrics["float32"]["top1"])
        verdict = "meets" if abs(change) <= 0.5 else "MISSES"
        console.print(
            f"{precision} top-1 {change:+.2f} points against float32 (ties ranked as the device ranks): "
            f"{verdict} the target (within 0.5 points either way)",
            highlight=False,
        )
    size = sum((out / name).stat().st_size for name in manifest.members)
    console.print(f"bundle written to {out} ({len(manifest.members)} model file(s), {size / 1e6:.2f} MB, {manifest.n_classes} classes)")


#: Keras backends for training, fastest first on this project's 2-core CPU (benchmarks/keras_backends.py:
#: resnet1d with physical augmentation, 18.5 s/epoch on JAX, 20.5 on TensorFlow, 25.5 on torch).
TRAINING_BACKENDS = ("jax", "tensorflow", "torch")


def _use_fastest_backend() -> str:
    """Pick the fastest installed Keras backend for training, unless KERAS_BACKEND says otherwise.

    Must run before Keras is first imported (every training command imports it lazily).
    """
    import importlib.util

    if "KERAS_BACKEND" not in os.environ:
        for backend in TRAINING_BACKENDS:
            if importlib.util.find_spec(backend) is not None:
                os.environ["KERAS_BACKEND"] = backend
                break
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _print_metrics(record: dict) -> None:
    from trainer.metrics import FIELD

    table = Table(title=f"test split ({record['protocol']}, seed {record['seed']}): {record['n_test']} spectra, {record['n_classes']} classes")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in record["test"].items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    field = record[FIELD]
    console.print(
        f"same test spectra degraded as in the field (trainer/augment.py field_degrade): "
        f"top-1 {field['top1']:.4f}, top-3 {field['top3']:.4f}, top-5 {field['top5']:.4f}",
        highlight=False,
    )
    console.print(
        f"best validation accuracy {record['best_val_accuracy']:.4f} (epoch {record['best_epoch']} of {record['epochs_run']}); "
        f"device: {record['device']}",
        highlight=False,
    )
    _print_grouped_fair(record)


def _print_grouped_fair(record: dict) -> None:
    from trainer.field_set import GROUPED_FAIR

    fair = record.get(GROUPED_FAIR, {})
    if "not_scored" in fair:
        console.print(f"grouped-fair: not scored ({fair['not_scored']})", highlight=False)
        return
    for part in ("test", "validation"):
        table = Table(title=f"grouped-fair, {part} specimens: real fair/poor RRUFF spectra of specimens the model never saw (top-1 / top-3, %)")
        for column in ("files", "model", "library", "fused", "identified (share, right)"):
            table.add_column(column, justify="right")
        for group, cell in fair[part].items():
            if not cell["spectra"]:
                table.add_row(f"{group}: 0", "—", "—", "—", "—")
                continue
            pct = [f"{100 * cell[f'{source}_top1']:.1f} / {100 * cell[f'{source}_top3']:.1f}" for source in ("model", "library", "fused")]
            table.add_row(
                f"{group}: {cell['spectra']}", *pct,
                f"{100 * cell['identified_coverage']:.0f} %, {100 * cell['identified_precision']:.0f} %",
            )
        console.print(table)
