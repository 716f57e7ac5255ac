"""The command line the run benchmarks share: run folders in, one report per run, a summary, the reports as JSON.

    python benchmarks/NAME.py RUN [RUN ...] [options] [--out FILE.json]

Each benchmark gives :func:`main` its docstring (the help), ``report_of(run_dir, field, args)`` (one run's report,
with the shared fair/poor set), an optional ``summary(reports)`` to print and optional extra options.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from trainer.field_set import FieldSet, default_field_set

Report = dict[str, Any]


def main(
    doc: str,
    report_of: Callable[[str, FieldSet, argparse.Namespace], Report],
    summary: Callable[[dict[str, Report]], str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> dict[str, Report]:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (`trainer fit`)")
    parser.add_argument("--out", help="write the reports here (JSON)")
    if options is not None:
        options(parser)
    args = parser.parse_args()
    field = default_field_set()
    reports = {run_dir: report_of(run_dir, field, args) for run_dir in args.runs}
    if summary is not None:
        print(summary(reports))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(reports, handle, indent=1)
    return reports
