"""The trainer's error types: what the user's input or a run folder can be wrong about.

The CLI turns exactly these into one line (with the edge's own ``SpectrumFileError`` and
``BundleError``, and OSError, a path's own problem); any other exception is a bug in the
trainer and keeps its traceback.
"""

from __future__ import annotations


class TrainerError(ValueError):
    """Base of the errors the ``trainer`` CLI reports in one line."""


class ConfigError(TrainerError):
    """A choice that does not exist (architecture, augmentation, schedule, split protocol)."""


class SplitError(TrainerError):
    """A dataset that cannot be split as asked (no specimen ids, a specimen under two minerals)."""
