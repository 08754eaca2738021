"""Images that two splits share: byte-identical copies and near-duplicates.

Byte-identical copies within one split are found here too: they leak nothing, but
each copy counts as an image of its own.

A near-duplicate is one picture stored twice in different bytes: re-encoded,
resized or converted. It is found in two steps. The 64-bit difference hash in each
:class:`~lazyvision.images.ImageInfo` proposes candidates fast, but it only sees
brightness steps on a 9 x 8 grid: small, simple pictures such as digit scans or
icons often land a few bits apart though they are different images, and colour
does not count at all. So each candidate pair is confirmed on pixels: their
16 x 16 RGB thumbnails must agree (see :func:`same_picture`). The decode pass
keeps each image's thumbnail on its ImageInfo, so no file is decoded again; only
an info without one (made by hand, or read from an older cache) has its file
decoded once more, and only when it is in a candidate pair.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lazyvision.data import SPLITS, Sample
from lazyvision.errors import ImageError
from lazyvision.images import THUMBNAIL_SIDE, ImageInfo, decode_image, thumbnail

logger = logging.getLogger(__name__)

# Limits of same_picture, in 8-bit levels, measured on the scikit-learn digits
# (64 px, plain and coloured), two photos and smooth random pictures, counting only
# pairs within hash distance 4. Of 3,176 copies at half size or more, saved as JPEG
# at quality 40 or more, 3,173 pass (the worst: mean 9.8, changed share 0.12);
# copies shrunk to a quarter (16 px), 7 in 10. Of the pairs of different scans
# among all 1,797 digits, none of 5,335 coloured pairs pass (smallest mean 11.6)
# and 2 of 13,557 plain ones do, whose 8 x 8 scans differ by one or two of 16
# levels in a few cells.
MAX_MEAN_DIFFERENCE = 10.0
CHANGED_LEVELS = 20
MAX_CHANGED_SHARE = 0.1

# Hashes are compared in blocks so a 50k x 10k comparison stays within memory.
_HASH_BLOCK = 4096
# Hash candidates of one image confirmed on pixels, nearest first.
_MAX_CANDIDATES = 100
# JPEGs are decoded at a reduced scale for thumbnails, never below this side.
_DRAFT_SIDE = 64


def byte_duplicates(
    samples: list[Sample], infos: Mapping[Path, ImageInfo]
) -> tuple[tuple[Sample, Sample], ...]:
    """Pairs byte-identical images of different splits.

    Each later-split copy is paired with the first copy in each earlier split.
    """
    by_digest: dict[str, dict[str, Sample]] = {}
    pairs: list[tuple[Sample, Sample]] = []
    for sample in _split_order(samples):
        firsts = by_digest.setdefault(infos[sample.path].digest, {})
        pairs += [
            (first, sample) for split, first in firsts.items() if split != sample.split
        ]
        firsts.setdefault(sample.split, sample)
    return tuple(pairs)


def copies_within_splits(
    samples: list[Sample], infos: Mapping[Path, ImageInfo]
) -> tuple[tuple[Sample, Sample], ...]:
    """Pairs byte-identical images of one split that are different files.

    Each later copy is paired with the first copy in its split that has its
    label. A copy under another label is no pair: it is one image with two
    labels, which the check warns of.
    """
    firsts: dict[tuple[str, str, str], Sample] = {}
    pairs: list[tuple[Sample, Sample]] = []
    for sample in samples:
        key = (sample.split, infos[sample.path].digest, sample.label)
        first = firsts.setdefault(key, sample)
        if first.path != sample.path:
            pairs.append((first, sample))
    return tuple(pairs)


def near_duplicates(
    samples: list[Sample],
    infos: Mapping[Path, ImageInfo],
    distance: int,
    *,
    max_pixels: int,
) -> tuple[tuple[Sample, Sample, int], ...]:
    """Pairs each later-split image with its nearest confirmed earlier-split one.

    Args:
        samples: The usable samples.
        infos: The ImageInfo of each sample's path.
        distance: Largest hash distance, in bits, of a candidate pair.
        max_pixels: The pixel limit a file is decoded again under, when its info
            carries no thumbnail.

    Returns:
        (earlier sample, later sample, hash distance) per pair whose bytes differ
        and whose thumbnails agree; a pair for which one thumbnail is missing and
        whose file can no longer be decoded is kept on its hash alone.
    """
    by_split = {split: [s for s in samples if s.split == split] for split in SPLITS}
    hashes = {
        split: np.array([infos[s.path].phash for s in group], dtype=np.uint64)
        for split, group in by_split.items()
    }
    thumbnails = _Thumbnails(infos, max_pixels)
    pairs: list[tuple[Sample, Sample, int]] = []
    for later_index, later in enumerate(SPLITS):
        for sample_index, sample in enumerate(by_split[later]):
            for earlier in SPLITS[:later_index]:
                match = _nearest(
                    sample,
                    hashes[later][sample_index],
                    by_split[earlier],
                    hashes[earlier],
                    infos,
                    distance,
                    thumbnails,
                )
                if match is not None:
                    pairs.append((match[0], sample, match[1]))
    if thumbnails.decoded:
        logger.debug(
            "decoded %d files again to confirm near-duplicates", thumbnails.decoded
        )
    return tuple(pairs)


def same_picture(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two thumbnails show the same picture.

    They do when their values differ by at most :data:`MAX_MEAN_DIFFERENCE` levels
    on average and at most :data:`MAX_CHANGED_SHARE` of their pixels differ by more
    than :data:`CHANGED_LEVELS` levels (averaged over the three channels). The
    first test allows the small, spread-out changes of re-encoding and resizing;
    the second rejects a different scan, whose strokes sit elsewhere.

    Example:
        >>> flat = np.full((16, 16, 3), 200, np.uint8)
        >>> same_picture(flat, flat - 5), same_picture(flat, flat // 2)
        (True, False)
    """
    mean, changed = _differences(first, second[None])
    return bool(mean[0] <= MAX_MEAN_DIFFERENCE and changed[0] <= MAX_CHANGED_SHARE)


def _nearest(
    sample: Sample,
    target: np.uint64,
    group: list[Sample],
    hashes: np.ndarray,
    infos: Mapping[Path, ImageInfo],
    distance: int,
    thumbnails: _Thumbnails,
) -> tuple[Sample, int] | None:
    """The nearest sample of a group within the distance that is the same picture."""
    digest = infos[sample.path].digest
    found: list[tuple[int, int]] = []
    for start in range(0, len(group), _HASH_BLOCK):
        block = np.bitwise_count(hashes[start : start + _HASH_BLOCK] ^ target)
        found += [
            (int(block[offset]), start + int(offset))
            for offset in np.flatnonzero(block <= distance)
            if infos[group[start + int(offset)].path].digest != digest
        ]
    if not found:
        return None
    # TODO: only the nearest hash candidates are compared on pixels; a data set of
    # near-blank images (whose hashes are all 0) can hold many more, and a true copy
    # among the rest goes unreported. Comparing them all needs an index on the
    # thumbnails themselves.
    found = sorted(found)[:_MAX_CANDIDATES]

    mine = thumbnails.get(sample.path)
    if mine is None:
        bits, index = found[0]
        return group[index], bits
    # A candidate that can no longer be decoded stands on its hash alone.
    scored: list[tuple[int, float, int]] = []
    known: list[tuple[int, int, np.ndarray]] = []
    for bits, index in found:
        theirs = thumbnails.get(group[index].path)
        if theirs is None:
            scored.append((bits, math.inf, index))
        else:
            known.append((bits, index, theirs))
    if known:
        mean, changed = _differences(mine, np.stack([t for _, _, t in known]))
        agree = (mean <= MAX_MEAN_DIFFERENCE) & (changed <= MAX_CHANGED_SHARE)
        scored += [
            (bits, float(difference), index)
            for (bits, index, _), difference, same in zip(
                known, mean, agree, strict=True
            )
            if same
        ]
    if not scored:
        return None
    bits, _, index = min(scored)
    return group[index], bits


def _differences(
    target: np.ndarray, candidates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean absolute difference and share of changed pixels, per candidate."""
    difference = np.abs(candidates.astype(np.int16) - target.astype(np.int16))
    mean = difference.mean(axis=(1, 2, 3))
    changed = (difference.mean(axis=3) > CHANGED_LEVELS).mean(axis=(1, 2))
    return mean, changed


class _Thumbnails:
    """Thumbnails of files, from their infos or else decoded at most once.

    None stands for a file without a stored thumbnail that fails to decode.
    """

    def __init__(self, infos: Mapping[Path, ImageInfo], max_pixels: int) -> None:
        self.infos = infos
        self.max_pixels = max_pixels
        self.decoded = 0
        self._found: dict[Path, np.ndarray | None] = {}

    def get(self, path: Path) -> np.ndarray | None:
        if path not in self._found:
            stored = self.infos[path].thumbnail_pixels()
            self._found[path] = stored if stored is not None else self._make(path)
        return self._found[path]

    def _make(self, path: Path) -> np.ndarray | None:
        try:
            rgb, _ = decode_image(
                path, max_pixels=self.max_pixels, draft_side=_DRAFT_SIDE
            )
        except ImageError as err:
            logger.debug("%s: %s; its near-duplicates rest on the hash", path, err)
            return None
        self.decoded += 1
        return thumbnail(rgb, THUMBNAIL_SIDE)


def _split_order(samples: list[Sample]) -> list[Sample]:
    order = {name: index for index, name in enumerate(SPLITS)}
    return sorted(samples, key=lambda sample: order[sample.split])
