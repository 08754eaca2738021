"""lazyvision: rank pretrained image backbones on your labelled images.

Example:
    >>> import lazyvision
    >>> board = lazyvision.rank("data/splits", models=["pixels"])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names and the module each lives in. They are imported on first use, so
# that `import lazyvision` (and the CLI's --help) does not pay for torch.
_EXPORTS = {
    "rank": "lazyvision.runner",
    "evaluate_backbone": "lazyvision.evaluation",
    "Settings": "lazyvision.settings",
    "Manifest": "lazyvision.evaluation",
    "RunInterrupted": "lazyvision.runner",
    "load_dataset": "lazyvision.data",
    "Dataset": "lazyvision.data",
    "Sample": "lazyvision.data",
    "check_dataset": "lazyvision.check",
    "DatasetReport": "lazyvision.check",
    "create_backbone": "lazyvision.backbones",
    "list_models": "lazyvision.backbones",
    "Backbone": "lazyvision.backbones",
    "Preprocessing": "lazyvision.backbones",
    "DEFAULT_MODELS": "lazyvision.backbones",
    "DEMO_MODELS": "lazyvision.backbones",
    "decode_image": "lazyvision.images",
    "fit_probe": "lazyvision.probe",
    "compute_metrics": "lazyvision.metrics",
    "format_leaderboard": "lazyvision.leaderboard",
    "write_report": "lazyvision.report",
    "write_digits_sample": "lazyvision.sample",
    "LazyVisionError": "lazyvision.errors",
    "DataError": "lazyvision.errors",
    "ImageError": "lazyvision.errors",
    "ModelError": "lazyvision.errors",
    "WeightsError": "lazyvision.errors",
    "UnsafeCheckpointError": "lazyvision.errors",
    "Terminated": "lazyvision.errors",
}

__all__ = [
    "DEFAULT_MODELS",
    "DEMO_MODELS",
    "Backbone",
    "DataError",
    "Dataset",
    "DatasetReport",
    "ImageError",
    "LazyVisionError",
    "Manifest",
    "ModelError",
    "Preprocessing",
    "RunInterrupted",
    "Sample",
    "Settings",
    "Terminated",
    "UnsafeCheckpointError",
    "WeightsError",
    "__version__",
    "check_dataset",
    "compute_metrics",
    "create_backbone",
    "decode_image",
    "evaluate_backbone",
    "fit_probe",
    "format_leaderboard",
    "list_models",
    "load_dataset",
    "rank",
    "write_digits_sample",
    "write_report",
]

if TYPE_CHECKING:
    from lazyvision.backbones import (
        DEFAULT_MODELS,
        DEMO_MODELS,
        Backbone,
        Preprocessing,
        create_backbone,
        list_models,
    )
    from lazyvision.check import DatasetReport, check_dataset
    from lazyvision.data import Dataset, Sample, load_dataset
    from lazyvision.errors import (
        DataError,
        ImageError,
        LazyVisionError,
        ModelError,
        Terminated,
        UnsafeCheckpointError,
        WeightsError,
    )
    from lazyvision.evaluation import Manifest, evaluate_backbone
    from lazyvision.images import decode_image
    from lazyvision.leaderboard import format_leaderboard
    from lazyvision.metrics import compute_metrics
    from lazyvision.probe import fit_probe
    from lazyvision.report import write_report
    from lazyvision.runner import RunInterrupted, rank
    from lazyvision.sample import write_digits_sample
    from lazyvision.settings import Settings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lazyvision' has no attribute {name!r}")
