from __future__ import annotations

import subprocess
import sys


def test_edge_never_imports_tensorflow_or_keras():
    code = (
        "import sys, edge.cli, edge.preprocessing, edge.spectrum_files;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras', 'jax', 'torch'});"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"edge imported: {result.stdout}"
