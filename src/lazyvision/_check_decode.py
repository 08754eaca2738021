"""Decoding every distinct image of a data set once, in this process or a pool.

What each outcome means for the data set (problems, duplicates, counts) is
:func:`lazyvision.check.check_dataset`'s business; one image's decoding is
:func:`lazyvision.images.try_decode_image`'s.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from lazyvision.data import Dataset
from lazyvision.errors import DataError, ImageError
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo, try_decode_image


def inspect_images(
    dataset: Dataset,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 0,
    on_decoded: Callable[[int, np.ndarray], None] | None = None,
) -> dict[Path, ImageInfo | ImageError]:
    """Decodes every distinct image of a dataset once.

    Args:
        dataset: The dataset whose images to read.
        max_pixels: Images with more pixels are reported, not decoded.
        workers: Processes to decode with; 0 decodes in this process.
        on_decoded: Called with (index, RGB array) for each readable image, index
            being its position among the distinct paths in sample order (the order
            of the returned dict). With workers, pixels travel back from the worker
            processes only when this is given.

    Returns:
        For each distinct path, in sample order, its ImageInfo or the ImageError
        saying why it cannot be read.

    Example:
        >>> infos = inspect_images(load_dataset("pets/"), workers=4)  # doctest: +SKIP
    """
    paths = list(dict.fromkeys(sample.path for sample in dataset.samples))
    return inspect_paths(
        paths, max_pixels=max_pixels, workers=workers, on_decoded=on_decoded
    )


def inspect_paths(
    paths: list[Path],
    *,
    max_pixels: int,
    workers: int,
    on_decoded: Callable[[int, np.ndarray], None] | None = None,
) -> dict[Path, ImageInfo | ImageError]:
    """Decodes distinct paths in order; see :func:`inspect_images`."""
    if workers < 0:
        raise DataError(f"workers must be 0 or more, got {workers!r}")
    decode = functools.partial(
        try_decode_image, max_pixels=max_pixels, keep_pixels=on_decoded is not None
    )

    results: dict[Path, ImageInfo | ImageError] = {}
    for index, (path, (outcome, rgb)) in enumerate(
        zip(paths, _run_decodes(decode, paths, workers), strict=True)
    ):
        results[path] = outcome
        if on_decoded is not None and rgb is not None:
            on_decoded(index, rgb)
    return results


def _run_decodes(
    decode: Callable[[Path], tuple[ImageInfo | ImageError, np.ndarray | None]],
    paths: list[Path],
    workers: int,
) -> Iterator[tuple[ImageInfo | ImageError, np.ndarray | None]]:
    """Decodes in order, in a process pool when workers > 0."""
    if workers == 0 or len(paths) < 2:
        yield from map(decode, paths)
        return
    chunksize = max(1, min(64, len(paths) // (workers * 4)))
    # Spawned workers start clean: a forked copy of a process that holds torch's
    # thread pools can hang.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(paths))) as pool:
        yield from pool.imap(decode, paths, chunksize=chunksize)
