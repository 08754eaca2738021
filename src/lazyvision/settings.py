"""The settings of a run: how backbones are run and scored.

Everything but the data and the backbones; each value is checked when the
settings are made, so a bad one stops a run before any image is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lazyvision.errors import DataError, ModelError
from lazyvision.features import PRECISIONS, resolve_device
from lazyvision.images import DEFAULT_MAX_PIXELS

#: The fewest bootstrap resamples that place the ends of a 95% interval.
MIN_RESAMPLES = 100


@dataclass(frozen=True)
class Settings:
    """How backbones are run and scored; everything but the data and the models.

    Attributes:
        batch_size: Images per forward pass (halved on out-of-memory errors).
        precision: "auto" (bfloat16 where the hardware has it), "float32",
            "bfloat16" or "float16".
        device: "auto", "cpu", "cuda" or "cuda:N".
        num_workers: Decoding threads; ``None`` picks from the CPU count, 0
            decodes in the calling thread.
        positive_label: The positive class of a binary task; ``None`` takes the
            last class in sorted order ("1" of 0/1, "yes" of no/yes).
        num_resamples: Bootstrap resamples for the 95% intervals: 0 for none,
            else at least :data:`MIN_RESAMPLES`.
        seed: Seed of the bootstraps and of a drawn validation split.
        weights: Local checkpoint file per backbone name; each must exist.
        allow_download: Whether timm may fetch weights from its hub.
        max_seconds_per_model: Time budget of one backbone, or ``None``.
        max_pixels: Images with more pixels are rejected as decompression bombs.
        num_repeats: Validation splits to score. Above 1, and only when val was
            drawn from train (no val split given), the probe is refitted on
            ``num_repeats - 1`` more stratified draws with seeds ``seed + 1``
            onward, and each row gets the mean, std, min and max of its val
            metrics over all the splits.
        max_latency_ms: Backbones slower than this per image are excluded from
            the ranking (kept in the files with status "excluded").
        max_params: Backbones with more parameters are excluded likewise.
    """

    batch_size: int = 64
    precision: str = "auto"
    device: str = "auto"
    num_workers: int | None = None
    positive_label: str | None = None
    num_resamples: int = 1000
    seed: int = 0
    weights: Mapping[str, Path] = field(default_factory=dict)
    allow_download: bool = True
    max_seconds_per_model: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    num_repeats: int = 1
    max_latency_ms: float | None = None
    max_params: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DataError(
                f"batch_size (--batch-size) must be 1 or more, got {self.batch_size!r}"
            )
        if self.num_resamples != 0 and not self.num_resamples >= MIN_RESAMPLES:
            raise DataError(
                f"num_resamples (--resamples) must be 0 (no intervals) or at least "
                f"{MIN_RESAMPLES}, got {self.num_resamples!r}: fewer resamples "
                "cannot place a 95% interval's ends"
            )
        workers = self.num_workers
        if workers is not None and workers < 0:
            raise DataError(
                f"num_workers (--workers) must be 0 or more, got {workers!r}; "
                "0 decodes in the calling thread"
            )
        budget = self.max_seconds_per_model
        if budget is not None and budget <= 0:
            raise DataError(
                "max_seconds_per_model (--max-seconds-per-model) must be positive, "
                f"got {budget!r}"
            )
        if isinstance(self.num_repeats, bool) or not isinstance(self.num_repeats, int):
            raise DataError(
                "num_repeats (--repeats) must be a whole number, got "
                f"{self.num_repeats!r}"
            )
        if self.num_repeats < 1:
            raise DataError(
                f"num_repeats (--repeats) must be 1 or more, got {self.num_repeats!r}"
            )
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise DataError(
                f"seed (--seed) must be a whole number of 0 or more, got {seed!r}"
            )
        if self.precision not in PRECISIONS:
            raise DataError(
                f"precision (--precision) must be one of {', '.join(PRECISIONS)}; "
                f"got {self.precision!r}"
            )
        try:
            resolve_device(self.device)
        except ModelError as err:
            raise DataError(f"device (--device): {err}") from err
        for name, path in self.weights.items():
            _check_weights_file(name, path)
        for name in ("max_latency_ms", "max_params"):
            limit = getattr(self, name)
            if limit is not None and not (
                isinstance(limit, int | float) and 0 <= limit < math.inf
            ):
                flag = "--" + name.replace("_", "-")
                raise DataError(
                    f"{name} ({flag}) must be a number of 0 or more, got {limit!r}; "
                    f"for no limit, leave {flag} out ({name}=None in Python)"
                )


def _check_weights_file(name: str, path: str | Path) -> None:
    """Refuses a checkpoint path that names no file, with the backbone it is for."""
    where = Path(path).expanduser()
    if where.is_file():
        return
    problem = "is not a file" if where.exists() else "does not exist"
    raise DataError(
        f"weights (--weights) for backbone {name!r}: {str(path)!r} {problem}; give "
        "the path of a .safetensors or torch checkpoint file"
    )
