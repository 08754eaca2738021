"""Checking what a run is asked for before any data is read.

The backbones (:func:`check_models`, with the default set's offline choice), the
sort column (:func:`check_sort`, :func:`check_sort_split`) and a precision that
would be slow here (:func:`warn_slow_precision`).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence

from lazyvision.backbones import (
    DEFAULT_MODELS,
    DEMO_MODELS,
    check_spec,
    offline_weights,
    parse_spec,
)
from lazyvision.errors import DataError, ModelError
from lazyvision.evaluation import SPLIT_METRICS
from lazyvision.features import resolve_device, resolve_precision
from lazyvision.metrics import METRICS
from lazyvision.settings import Settings

# The runner's name, which the command line prints and the tests capture.
logger = logging.getLogger("lazyvision.runner")


def check_models(
    models: Sequence[str] | str | None, *, allow_download: bool = True
) -> list[str]:
    """The specs to run; a misspelt name stops the run before any data is read."""
    if models is None:
        return list(DEFAULT_MODELS) if allow_download else _offline_default()
    if isinstance(models, str):
        models = models.split(",")
    specs = [m.strip() for m in models if m.strip()]
    if not specs:
        raise DataError("models is empty; name at least one backbone, e.g. 'pixels'")
    duplicated = sorted({m for m in specs if specs.count(m) > 1})
    if duplicated:
        raise DataError(
            f"models (--models) names {', '.join(map(repr, duplicated))} twice"
        )
    for spec in specs:
        try:
            check_spec(spec)
        except ModelError as err:
            raise DataError(f"models (--models): {err}") from err
    return specs


def _offline_default() -> list[str]:
    """The default set without downloads: its backbones whose weights are here,
    and the packaged ones, rather than a row of missing weights for each."""
    here = [spec for spec in DEFAULT_MODELS if offline_weights(spec) is not None]
    missing = [spec for spec in DEFAULT_MODELS if spec not in here]
    if not missing:
        return here
    packaged = [
        spec
        for spec in DEMO_MODELS
        if spec not in here
        and parse_spec(spec).random_weights is False
        and offline_weights(spec) is not None
    ]
    logger.warning(
        "downloads are off and %d of the default backbones have no weights here "
        "(%s)%s; `lazyvision models --offline` lists what is here, and --models "
        "picks backbones",
        len(missing),
        ", ".join(missing),
        f": running the packaged {', '.join(packaged)} instead" if packaged else "",
    )
    return [*packaged, *here]


def check_sort(sort: str) -> None:
    allowed = [f"{split}_{metric}" for split in SPLIT_METRICS for metric in METRICS]
    allowed += ["images_per_second", "num_params", "latency_ms"]
    if sort not in allowed:
        close = difflib.get_close_matches(sort, allowed, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "."
        raise DataError(
            f"sort metric {sort!r} is not a leaderboard column{hint} "
            f"The columns: {', '.join(allowed)}"
        )


def check_sort_split(sort: str, splits: Sequence[str], source: str) -> None:
    """Refuses to sort on a split the data does not have: every row would tie."""
    split, _, metric = sort.partition("_")
    if split not in SPLIT_METRICS or split in splits:
        return
    raise DataError(
        f"sort metric {sort!r} (--sort) is scored on the {split} split, and "
        f"{source!r} has no {split} split (only {', '.join(splits) or 'none'}); "
        f"sort on 'val_{metric}' instead, or add a {split} split"
    )


def warn_slow_precision(settings: Settings) -> None:
    """Says once that float16 on a CPU is slow: CPUs compute it in software."""
    device = resolve_device(settings.device)
    if settings.precision != "float16" or device.type != "cpu":
        return
    fast = str(resolve_precision("auto", device)).removeprefix("torch.")
    if fast == "bfloat16":
        advice = "bfloat16 is this CPU's fast reduced precision"
    else:
        advice = f"this CPU has no fast reduced precision, so {fast} is faster"
    logger.warning(
        "precision float16 (--precision) on the CPU runs several times slower "
        "than %s: %s; use --precision %s, or auto",
        fast,
        advice,
        fast,
    )
