"""Run a bundle's TFLite model on the CPU: LiteRT first, tflite-runtime second, tf.lite last.

``ai-edge-litert`` is the maintained runtime (numpy 2, x86-64 and aarch64 wheels);
``tflite-runtime`` 2.14 is its frozen predecessor (numpy < 2, Python <= 3.11); TensorFlow's own
interpreter is only a fallback for a host that has TensorFlow and neither of the others.
Quantised models are fed and read through the scale and zero point stored in the model itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from edge.bundle import Bundle, BundleError
from edge.ranking import rank
from ramancore.preprocessing import GRID_SIZE, smooth_measured_span


class RuntimeUnavailable(RuntimeError):
    """No TFLite interpreter can be imported."""


def interpreter_class() -> tuple[type, str]:
    """The first available interpreter class and a line saying which package it came from."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, f"tflite-runtime {metadata.version('tflite-runtime')}"
    except ImportError:
        pass
    try:
        import tensorflow as tf  # last resort, host only

        return tf.lite.Interpreter, f"tensorflow {tf.__version__} (tf.lite fallback)"
    except ImportError:
        raise RuntimeUnavailable("no TFLite interpreter installed: pip install ai-edge-litert") from None


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what the C++ runtime prints on fd 2 (an INFO line about its XNNPACK delegate)
    from the live screen; failures still arrive as Python exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass(frozen=True)
class Prediction:
    """Top-k minerals with probabilities, and how long the model took."""

    top: list[tuple[str, float]]
    latency_ms: float


class _Member:
    """One TFLite model of a bundle, loaded, with its own quantisation."""

    def __init__(self, cls: type, path: Path, bundle: Bundle, num_threads: int | None) -> None:
        try:
            self.interpreter = cls(model_path=str(path), num_threads=num_threads or os.cpu_count())
            with _native_stderr_silenced():
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{bundle.path}: the interpreter cannot load {path.name} ({exc})") from None
        (self._input,) = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if tuple(self._input["shape"]) != (1, GRID_SIZE, 1):
            raise BundleError(f"{bundle.path}: {path.name} input shape {tuple(self._input['shape'])} is not (1, {GRID_SIZE}, 1)")
        # the class probabilities, and for an embedding search the embedding: told apart by their length
        # (the converter's output order is not the model's), which export keeps different
        by_size = {int(o["shape"][-1]): o for o in outputs}
        if len(by_size) != len(outputs) or len(bundle.labels) not in by_size or len(outputs) > 2:
            sizes = ", ".join(str(int(o["shape"][-1])) for o in outputs)
            raise BundleError(f"{bundle.path}: {path.name} has outputs of size {sizes}, not {len(bundle.labels)} (one per label) and at most an embedding")
        self._output = by_size.pop(len(bundle.labels))
        self._embedding = next(iter(by_size.values()), None)

    def _quantise(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        scale, zero_point = self._input["quantization"]
        if np.issubdtype(dtype, np.integer) and scale:
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero_point), info.min, info.max)
        return x.astype(dtype).reshape(1, GRID_SIZE, 1)

    @property
    def gives_embedding(self) -> bool:
        return self._embedding is not None

    @staticmethod
    def _dequantise(y: np.ndarray, details: dict) -> np.ndarray:
        scale, zero_point = details["quantization"]
        if np.issubdtype(y.dtype, np.integer) and scale:
            return (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)

    def outputs(self, spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(class probabilities, embedding or None) of one preprocessed spectrum."""
        self.interpreter.set_tensor(self._input["index"], self._quantise(spectrum))
        self.interpreter.invoke()
        probabilities = self._dequantise(self.interpreter.get_tensor(self._output["index"])[0], self._output)
        if self._embedding is None:
            return probabilities, None
        return probabilities, self._dequantise(self.interpreter.get_tensor(self._embedding["index"])[0], self._embedding)


class Classifier:
    """A bundle's model (or the mean of an ensemble's members), ready to classify preprocessed spectra one at a time;
    with the bundle's embedding search (:mod:`edge.embedding_search`) fused into each member's probabilities where it
    has one."""

    def __init__(self, bundle: Bundle, num_threads: int | None = None) -> None:
        cls, self.runtime = interpreter_class()
        self.bundle = bundle
        self.labels = bundle.labels
        self.members = [_Member(cls, path, bundle, num_threads) for path in bundle.member_paths]
        self.embedding_searches = bundle.embedding_searches()  # one per member, or none
        self.smoothing_cm1 = bundle.manifest.smoothing_cm1
        if self.embedding_searches and not all(member.gives_embedding for member in self.members):
            raise BundleError(f"{bundle.path}: has an embedding search but a model of it gives no embedding")

    def member_outputs(self, spectrum: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Each member's own (class probabilities, embedding or None) for one preprocessed spectrum (GRID_SIZE
        values), smoothed first where the bundle says so; what export embeds the library with and fits each member's
        search weight on."""
        x = smooth_measured_span(spectrum, self.smoothing_cm1) if self.smoothing_cm1 else np.asarray(spectrum, dtype=np.float32)
        return [member.outputs(x) for member in self.members]

    def probabilities(self, spectrum: np.ndarray) -> np.ndarray:
        """Class probabilities for one preprocessed spectrum: each member's, with its embedding search fused in, averaged."""
        outputs = self.member_outputs(spectrum)
        if not self.embedding_searches:
            return outputs[0][0] if len(outputs) == 1 else np.mean([p for p, _ in outputs], axis=0)
        fused = [search.fuse(p, e) for search, (p, e) in zip(self.embedding_searches, outputs) if e is not None]  # every member has one
        return fused[0] if len(fused) == 1 else np.mean(fused, axis=0)

    def classify(self, spectrum: np.ndarray, k: int = 3) -> Prediction:
        """Top-k minerals of one preprocessed spectrum."""
        started = time.perf_counter()
        proba = self.probabilities(spectrum)
        best = rank(proba)[:k]
        latency = (time.perf_counter() - started) * 1e3
        return Prediction(top=[(self.labels[i], float(proba[i])) for i in best], latency_ms=latency)
