"""The frozen ``tflite-runtime`` 2.14 (the only TFLite runtime for 32-bit Raspberry Pi OS) runs the edge path.

A separate virtual environment with ``tflite-runtime==2.14.0`` and ``numpy<2``, and no ai-edge-litert,
classifies the shared RRUFF sample through ``edge`` (preprocessing, bundle checks, the interpreter
fallback, the embedding search); its top-1 must be what LiteRT gives here. The two runtimes' int8 kernels round
differently (outputs a few quantisation steps apart), so where a spectrum's first two minerals are within NEAR_TIE
of each other in both, the two may name them in either order; at most one spectrum in fifty may be such a swap.
"""

from __future__ import annotations

import json
import subprocess
import venv

import pytest

from tests.conftest import REPO

CHILD = """
import json, sys
sys.path.insert(0, {repo!r})
from edge.bundle import load_bundle
from ramancore.preprocessing import preprocess
from edge.runtime import Classifier
from edge.spectrum_files import read_spectrum_file
files = json.loads(sys.argv[1])
classifier = Classifier(load_bundle(), num_threads=1)
tops = [classifier.classify(preprocess(s.x, s.y), k=2).top for s in map(read_spectrum_file, files)]
print(json.dumps({{"runtime": classifier.runtime, "top2": tops}}))
"""
#: Fused probabilities this close for the first two minerals are a tie the runtimes may break either way.
NEAR_TIE = 0.05


@pytest.fixture(scope="module")
def tflite_runtime_python(tmp_path_factory):
    env_dir = tmp_path_factory.mktemp("tflite-runtime-env")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "tflite-runtime==2.14.0", "numpy<2"], capture_output=True, text=True
    )
    if install.returncode != 0:
        pytest.skip(f"tflite-runtime 2.14.0 cannot be installed here: {install.stderr.strip().splitlines()[-1:]}")
    return python


def test_tflite_runtime_classifies_like_litert(tflite_runtime_python, rruff_sample):
    from edge.bundle import load_bundle
    from edge.runtime import Classifier
    from edge.spectrum_files import read_spectrum_file
    from ramancore.preprocessing import preprocess

    files = sorted(str(p) for p in rruff_sample.glob("*Processed*.txt"))
    child = subprocess.run(
        [str(tflite_runtime_python), "-c", CHILD.format(repo=str(REPO)), json.dumps(files)], capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["runtime"].startswith("tflite-runtime 2.14"), result["runtime"]
    litert = Classifier(load_bundle(), num_threads=1)
    assert litert.runtime.startswith("ai-edge-litert")
    here = [litert.classify(preprocess(s.x, s.y), k=2).top for s in map(read_spectrum_file, files)]
    assert len(here) == len(result["top2"]) == 150
    swapped = 0
    for theirs, ours in zip(result["top2"], here):
        if theirs[0][0] == ours[0][0]:
            continue
        near = {m for m, _ in theirs} == {m for m, _ in ours} and max(theirs[0][1] - theirs[1][1], ours[0][1] - ours[1][1]) < NEAR_TIE
        assert near, f"tflite-runtime names {theirs[0][0]}, LiteRT {ours[0][0]}: not a near tie ({theirs} / {ours})"
        swapped += 1
    assert swapped <= len(here) // 50, f"{swapped} near ties broken differently"
