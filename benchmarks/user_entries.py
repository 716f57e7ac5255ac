"""Does one user entry stay out of the answers for spectra it does not match? The "Novelite" case, measured.

    python benchmarks/user_entries.py [--model BUNDLE] [--data ../shared/data] [--out FILE.json]

A user adds one spectrum under a name the bundle does not know ("Novelite"); every later spectrum is answered with
it in the library. Here each mineral of the 150 RRUFF RAW/Processed sample twins in turn gives its first Processed
file as that entry (a fresh user library each time, :meth:`edge.identifier.Identifier.add_to_user_library`, the
`a` key's and `library add`'s path), and every sample file is answered as `classify` answers it
(:func:`edge.model_input.read_model_input`: RAW files recognised and cleaned; :meth:`Identifier.answer`):

- *unrelated*: the files of every other mineral: how often the entry is in the top-3, first, or first and
  *identified* (the issue's target: in the top-3 of <= 2 % of them; before the user-entry score, 129 of 150);
- *its own mineral*: the other files of the entry's mineral (the entry's own RAW twin among them: the same
  specimen measured again, as a user would): how often the entry is in the top-3, and first.

The bundle's model was trained on Dataset_2, which holds 149 of the sample's specimens: it knows these spectra well,
which is the situation of the issue's measurement (the same files), not a new-specimen figure.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from edge.bundle import DEFAULT_BUNDLE, load_bundle
from edge.identifier import Identifier
from edge.model_input import ModelInput, read_model_input
from edge.user_library import UserLibrary

NEW_NAME = "Novelite"  #: the user's name for the entry: not a mineral of the bundle


def entry_figures(identifier: Identifier, entry: ModelInput, files: list[ModelInput]) -> dict[str, list[bool]]:
    """Per answered file: the entry in the top-3, first, first and *identified*; split by unrelated / the entry's own
    mineral."""
    with tempfile.TemporaryDirectory() as folder:
        identifier.user_library = UserLibrary(Path(folder))
        identifier.add_to_user_library(NEW_NAME, entry.vector, entry.spectrum.source)
        out: dict[str, list[bool]] = defaultdict(list)
        for read in files:
            if read is entry:
                continue
            answer = identifier.answer(read.y, read.vector)
            names = [name for name, _ in answer.top]
            part = "own" if read.spectrum.mineral == entry.spectrum.mineral else "unrelated"
            out[f"{part} top3"].append(NEW_NAME in names)
            out[f"{part} first"].append(names[:1] == [NEW_NAME])
            out[f"{part} identified"].append(names[:1] == [NEW_NAME] and answer.state == "identified")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE, help="the bundle (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    identifier = Identifier(bundle, num_threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.data / "rruff_excellent_sample.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        files = [read_model_input(path) for path in sorted(Path(tmp).rglob("*.txt"))]
    entries: dict[str, ModelInput] = {}
    for read in files:
        if "Processed" in read.spectrum.source and read.spectrum.mineral not in entries:
            entries[str(read.spectrum.mineral)] = read
    totals: dict[str, list[bool]] = defaultdict(list)
    for entry in entries.values():
        for key, values in entry_figures(identifier, entry, files).items():
            totals[key] += values
    report = {
        "bundle": bundle.model_id,
        "entries": len(entries),
        "files": len(files),
        **{key: {"share": float(np.mean(values)), "of": len(values)} for key, values in sorted(totals.items())},
    }
    print(f"{len(entries)} entries (one Processed file of each sample mineral, as {NEW_NAME!r}), {len(files)} files each")
    for key, figure in report.items():
        if isinstance(figure, dict):
            print(f"  {key:22s} {100 * figure['share']:5.1f} % of {figure['of']} answers")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
