"""A small real image set for the demo and the tests: scikit-learn's digits.

The 8x8 scans of handwritten digits that scikit-learn ships are written as
64-pixel PNG files, each in its own random ink and paper colours, in the layout
most users have: an ``images/<label>/`` folder and ``splits/{train,val,test}.csv``
files whose paths are relative to the CSVs' own folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

logger = logging.getLogger(__name__)


def digit_images(
    *,
    num_per_class: int = 30,
    classes: tuple[int, ...] = tuple(range(10)),
    side: int = 64,
    coloured: bool = True,
    seed: int = 0,
) -> list[tuple[Image.Image, str]]:
    """Digit scans as RGB images with their labels, a fixed draw per class.

    With ``coloured``, each scan gets its own ink and paper colours, as photos of
    handwriting do: the class is in the shape alone, so raw pixels are not enough.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images: list[tuple[Image.Image, str]] = []
    for digit in classes:
        indices = np.flatnonzero(digits.target == digit)
        size = min(num_per_class, len(indices))
        for index in sorted(rng.choice(indices, size=size, replace=False)):
            scan = np.round(digits.images[index] * (255 / 16)).astype(np.uint8)
            upscaled = Image.fromarray(scan).resize(
                (side, side), Image.Resampling.BICUBIC
            )
            ink = np.asarray(upscaled)[..., None] / 255.0
            paper, pen = _colours(rng) if coloured else (np.full(3, 255.0), np.zeros(3))
            rgb = paper * (1 - ink) + pen * ink
            picture = Image.fromarray(np.round(rgb).clip(0, 255).astype(np.uint8))
            images.append((picture, str(digit)))
    return images


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paper and ink colours far enough apart in brightness to read."""
    while True:
        paper, pen = rng.uniform(0, 255, size=(2, 3))
        if abs(paper.mean() - pen.mean()) > 80:
            return paper, pen


def write_digits_sample(
    root: str | Path,
    *,
    num_per_class: int = 30,
    classes: tuple[int, ...] = tuple(range(10)),
    side: int = 64,
    coloured: bool = True,
    val_fraction: float = 0.25,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Path:
    """Writes the digits sample and returns its ``splits`` folder.

    Args:
        root: Folder to write into (created).
        num_per_class: Images per digit.
        classes: Which digits.
        side: Image side in pixels.
        coloured: Random ink and paper colours per image.
        val_fraction: Share of each class that goes to val.
        test_fraction: Share of each class that goes to test.
        seed: Seed of the draw and of the split.

    Returns:
        ``root/splits``, holding train.csv, val.csv and test.csv.

    Example:
        >>> import tempfile
        >>> splits = write_digits_sample(tempfile.mkdtemp(), num_per_class=4)
        >>> sorted(p.name for p in splits.iterdir())
        ['test.csv', 'train.csv', 'val.csv']
    """
    root = Path(root)
    splits = root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Image.Image]] = {}
    for picture, label in digit_images(
        num_per_class=num_per_class,
        classes=classes,
        side=side,
        coloured=coloured,
        seed=seed,
    ):
        by_label.setdefault(label, []).append(picture)
    for label, pictures in by_label.items():
        folder = root / "images" / label
        folder.mkdir(parents=True, exist_ok=True)
        order = rng.permutation(len(pictures))
        num_val = max(1, round(val_fraction * len(pictures)))
        num_test = round(test_fraction * len(pictures))
        for rank, index in enumerate(order):
            split = (
                "val"
                if rank < num_val
                else "test"
                if rank < num_val + num_test
                else "train"
            )
            name = f"{split}_{index}.png"
            pictures[index].save(folder / name)
            rows[split].append((f"../images/{label}/{name}", label))
    for split, items in rows.items():
        if items:
            frame = pd.DataFrame(items, columns=["filepath", "label"])
            frame.to_csv(splits / f"{split}.csv", index=False)
    logger.info("wrote %d digit images under %s", sum(map(len, rows.values())), root)
    return splits
