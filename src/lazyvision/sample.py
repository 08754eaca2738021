"""A small real image set for the demo and the tests: scikit-learn's digits.

The 8x8 scans of handwritten digits that scikit-learn ships are written as
64-pixel PNG files, dark ink on white, in the layout most users have: an
``images/<label>/`` folder and ``splits/{train,val,test}.csv`` files whose paths are
relative to the CSVs' own folder.
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
    seed: int = 0,
) -> list[tuple[Image.Image, str]]:
    """Digit scans as RGB images with their labels, a fixed draw per class."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images: list[tuple[Image.Image, str]] = []
    for digit in classes:
        indices = np.flatnonzero(digits.target == digit)
        chosen = rng.choice(
            indices, size=min(num_per_class, len(indices)), replace=False
        )
        for index in sorted(chosen):
            ink = digits.images[index] / 16.0
            gray = np.round(255 * (1.0 - ink)).astype(np.uint8)
            picture = Image.fromarray(gray).resize(
                (side, side), Image.Resampling.BICUBIC
            )
            images.append((picture.convert("RGB"), str(digit)))
    return images


def write_digits_sample(
    root: str | Path,
    *,
    num_per_class: int = 30,
    classes: tuple[int, ...] = tuple(range(10)),
    side: int = 64,
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
        num_per_class=num_per_class, classes=classes, side=side, seed=seed
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
