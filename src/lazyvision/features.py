"""Decode each image once, run each backbone once per image, cache the embeddings.

Every timm evaluation transform resizes the shorter side and takes a centred crop,
so what any backbone sees of an image lies inside its central square. The decode
pass therefore keeps one thing per image: that square, resized once to the largest
side any requested backbone needs, in a memory-mapped array. Each backbone then
resizes the squares to its own resolution in batches with its own interpolation,
crops, normalises and runs them, channels-last and in reduced precision where the
hardware has it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lazyvision.backbones import Backbone, Preprocessing
from lazyvision.cache import FeatureStore, locked, stable_hash
from lazyvision.errors import BudgetExceeded, ImageError, ModelError
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo, center_square, decode_image

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: Images embedded between two cache writes; a crash loses at most this many.
CHUNK_SIZE = 256
#: Below this many images a worker pool costs more to start than it saves.
MIN_IMAGES_FOR_WORKERS = 400
#: The smallest batch tried after running out of memory.
MIN_BATCH_SIZE = 1


def resolve_device(device: str = "auto") -> torch.device:
    """``cuda`` when available for ``auto``, else what was asked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ModelError(
            f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'"
        ) from err


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``.

    ``auto`` is bfloat16 where the hardware computes it natively (GPUs that support
    it, CPUs with AVX512-BF16 or AMX), float16 on older GPUs, float32 elsewhere.
    """
    if precision not in PRECISIONS:
        raise ModelError(
            f"precision {precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if precision != "auto":
        return getattr(torch, precision)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def _cpu_has_bf16() -> bool:
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def feature_key(backbone: Backbone, dtype: torch.dtype) -> str:
    """Identifies embeddings: architecture, weights, preprocessing and precision."""
    if not backbone.reduced_precision_ok:
        dtype = torch.float32
    return stable_hash(
        "features-v1",
        backbone.architecture,
        backbone.weights_id,
        backbone.preprocessing,
        str(dtype),
    )


class PixelStore:
    """Central squares of decoded images, ``(N, side, side, 3)`` uint8, on disk.

    The array is a memory map in a temporary file, so decoded pixels cost page
    cache rather than process memory, and worker processes write into it directly.

    Args:
        capacity: The most images the store will hold.
        side: Side of each stored square.
        folder: Where the temporary file lives (removed by :meth:`close`).
    """

    def __init__(
        self,
        capacity: int,
        side: int,
        folder: Path | None = None,
        *,
        sources: Mapping[str, Path] | None = None,
        num_workers: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.side = side
        self.capacity = max(capacity, 1)
        self.sources = dict(sources or {})
        self.num_workers = num_workers
        self.max_pixels = max_pixels
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(suffix=".pixels", dir=folder)
        os.close(handle)
        self.path = Path(name)
        self.array = np.memmap(
            self.path, dtype=np.uint8, mode="w+", shape=(self.capacity, side, side, 3)
        )
        self.index: dict[str, int] = {}
        self.used = 0

    def ensure(self, digests: Sequence[str]) -> None:
        """Decodes the images among ``digests`` that the store lacks.

        Raises:
            ImageError: An image cannot be decoded, or its file changed since it
                was checked.
        """
        absent = [d for d in dict.fromkeys(digests) if d not in self.index]
        unknown = [d for d in absent if d not in self.sources]
        if unknown:
            raise ValueError(f"{len(unknown)} images have no known file to decode")
        if not absent:
            return
        paths = [self.sources[d] for d in absent]
        results = decode_files(
            paths, store=self, num_workers=self.num_workers, max_pixels=self.max_pixels
        )
        for digest, result in zip(absent, results, strict=True):
            if result.error is not None:
                raise result.error
            if digest not in self.index:
                raise ImageError(str(result.path), "the file changed during the run")

    def __contains__(self, digest: object) -> bool:
        return digest in self.index

    def allocate(self, count: int) -> int:
        """Reserves ``count`` consecutive slots; returns the first."""
        first = self.used
        if first + count > self.capacity:
            raise ValueError(
                f"pixel store holds {self.capacity} images; {first + count} asked"
            )
        self.used += count
        return first

    def batch(self, digests: Sequence[str]) -> np.ndarray:
        """Stored squares for ``digests``, in order."""
        return np.stack([self.array[self.index[d]] for d in digests])

    def close(self) -> None:
        _open_maps.pop(str(self.path), None)
        self.array.flush()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass(frozen=True)
class DecodeResult:
    """What the decode pass found for one file."""

    path: Path
    info: ImageInfo | None
    error: ImageError | None


def decode_files(
    paths: Sequence[Path],
    *,
    store: PixelStore | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_workers: int = 0,
) -> list[DecodeResult]:
    """Decodes every file once, keeping its central square in ``store``.

    Files are decoded in worker processes when there are enough of them; each
    worker writes into the store's memory map directly.

    Args:
        paths: Files to decode.
        store: Where to keep the squares; ``None`` only validates.
        max_pixels: Decompression-bomb limit per image.
        num_workers: Worker processes; 0 decodes in this process.

    Returns:
        One result per path, in order.
    """
    first = store.allocate(len(paths)) if store is not None else 0
    target = None
    if store is not None:
        store.array.flush()
        target = (str(store.path), store.array.shape, store.side)
    jobs = [(path, first + i, target, max_pixels) for i, path in enumerate(paths)]
    if num_workers > 0 and len(paths) >= MIN_IMAGES_FOR_WORKERS:
        context = multiprocessing.get_context("forkserver")
        with context.Pool(min(num_workers, len(paths))) as pool:
            results = pool.map(_decode_job, jobs, chunksize=16)
    else:
        results = [_decode_job(job) for job in jobs]
    if store is not None:
        for (_, slot, _, _), result in zip(jobs, results, strict=True):
            if result.info is not None:
                store.index.setdefault(result.info.digest, slot)
    return results


_Target = tuple[str, tuple[int, ...], int]
_open_maps: dict[str, np.memmap] = {}


def _decode_job(job: tuple[Path, int, _Target | None, int]) -> DecodeResult:
    path, slot, target, max_pixels = job
    side = target[2] if target is not None else None
    try:
        rgb, info = decode_image(path, max_pixels=max_pixels, draft_side=side)
    except ImageError as err:
        return DecodeResult(path=path, info=None, error=err)
    if target is not None and side is not None:
        name, shape, _ = target
        if name not in _open_maps:
            _open_maps[name] = np.memmap(name, dtype=np.uint8, mode="r+", shape=shape)
        _open_maps[name][slot] = center_square(rgb, side)
    return DecodeResult(path=path, info=info, error=None)


@dataclass(frozen=True)
class Extraction:
    """Embeddings of a list of images and what it took to get them.

    Attributes:
        embeddings: (N, D) float32, one row per requested digest, in order.
        num_computed: Images the backbone ran on in this call (the rest came from
            the cache).
        seconds: Wall time spent preparing batches and running the backbone.
        batch_size: The batch size that ran (smaller than asked after running out
            of memory).
        dtype: The compute precision used.
    """

    embeddings: np.ndarray
    num_computed: int
    seconds: float
    batch_size: int
    dtype: str

    @property
    def images_per_second(self) -> float | None:
        if self.num_computed == 0 or self.seconds <= 0:
            return None
        return self.num_computed / self.seconds


def extract_features(
    backbone: Backbone,
    digests: Sequence[str],
    *,
    cache_dir: Path,
    pixels: PixelStore,
    batch_size: int = 64,
    device: torch.device | None = None,
    precision: str = "auto",
    deadline: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Extraction:
    """Embeds every image, taking what the cache has and caching the rest.

    Computed embeddings are written to the cache every :data:`CHUNK_SIZE` images,
    so an interrupted extraction resumes from its last complete chunk. The cache
    entry is locked while this runs: a second run on the same cache waits, then
    reuses what this one wrote.

    Args:
        backbone: The backbone to run.
        digests: SHA-256 digests of the images, as keys into ``pixels``.
        cache_dir: The cache folder.
        pixels: Decoded central squares of (at least) the uncached images.
        batch_size: Images per forward pass; halved on out-of-memory errors.
        device: Where to run; ``None`` picks a GPU when there is one.
        precision: One of :data:`PRECISIONS`.
        deadline: A ``time.monotonic()`` value past which :class:`BudgetExceeded`
            is raised between batches.
        progress: Called with the number of images finished since the last call.

    Returns:
        The embeddings in the order of ``digests``.
    """
    device = device or resolve_device()
    dtype = resolve_precision(precision, device)
    if not backbone.reduced_precision_ok:
        dtype = torch.float32
    store = FeatureStore(cache_dir / "features" / feature_key(backbone, dtype))
    store.folder.mkdir(parents=True, exist_ok=True)
    with locked(store.lock_path):
        cached = store.load()
        missing = list(dict.fromkeys(d for d in digests if d not in cached))
        if progress is not None and len(digests) > len(missing):
            progress(len(digests) - len(set(missing)))
        start = time.perf_counter()
        used_batch = batch_size
        if missing:
            pixels.ensure(missing)
            used_batch = _run_backbone(
                backbone,
                missing,
                pixels=pixels,
                store=store,
                into=cached,
                batch_size=batch_size,
                device=device,
                dtype=dtype,
                deadline=deadline,
                progress=progress,
            )
        seconds = time.perf_counter() - start
    embeddings = np.stack([cached[d] for d in digests]) if digests else np.zeros((0, 0))
    return Extraction(
        embeddings=embeddings.astype(np.float32, copy=False),
        num_computed=len(missing),
        seconds=seconds,
        batch_size=used_batch,
        dtype=str(dtype).removeprefix("torch."),
    )


def _run_backbone(
    backbone: Backbone,
    missing: list[str],
    *,
    pixels: PixelStore,
    store: FeatureStore,
    into: dict[str, np.ndarray],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    deadline: float | None,
    progress: Callable[[int], None] | None,
) -> int:
    """Runs the backbone over ``missing`` in chunks; returns the batch size used."""
    model = backbone.model.to(device)
    if device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    prepare = BatchPreparer(backbone.preprocessing, pixels.side, device)
    for chunk_start in range(0, len(missing), CHUNK_SIZE):
        chunk = missing[chunk_start : chunk_start + CHUNK_SIZE]
        outputs: list[np.ndarray] = []
        position = 0
        while position < len(chunk):
            if deadline is not None and time.monotonic() > deadline:
                raise BudgetExceeded("time budget ran out during extraction")
            batch = chunk[position : position + batch_size]
            try:
                outputs.append(_forward(model, prepare(pixels.batch(batch)), dtype))
            except (torch.OutOfMemoryError, MemoryError) as err:
                if batch_size <= MIN_BATCH_SIZE:
                    raise ModelError(
                        f"out of memory even at batch size {batch_size}"
                    ) from err
                batch_size = max(MIN_BATCH_SIZE, batch_size // 2)
                logger.warning(
                    "%s ran out of memory; retrying with batch size %d",
                    backbone.name,
                    batch_size,
                )
                _free_memory(device)
                continue
            position += len(batch)
            if progress is not None:
                progress(len(batch))
        matrix = np.concatenate(outputs)
        store.write_chunk(chunk, matrix)
        into.update(zip(chunk, matrix, strict=True))
    return batch_size


def _forward(
    model: torch.nn.Module, batch: torch.Tensor, dtype: torch.dtype
) -> np.ndarray:
    autocast = dtype != torch.float32
    with (
        torch.inference_mode(),
        torch.autocast(batch.device.type, dtype=dtype, enabled=autocast),
    ):
        output = model(batch)
    if output.ndim != 2:
        output = output.flatten(1)
    return output.float().cpu().numpy()


def _free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class BatchPreparer:
    """Turns stored squares into a backbone's normalised input batch.

    Resizes each square to the backbone's resize size with its interpolation
    (antialiased when shrinking, as Pillow does), takes the centred crop, scales to
    0..1 and normalises with the backbone's mean and std.
    """

    def __init__(self, preprocessing: Preprocessing, side: int, device: torch.device):
        self.preprocessing = preprocessing
        self.side = side
        self.device = device
        self.mean = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1)

    def __call__(self, squares: np.ndarray) -> torch.Tensor:
        height, width = self.preprocessing.input_size
        resize = max(self.preprocessing.resize_size, height, width)
        if self.preprocessing.crop_mode == "squash":
            # The stored square is already the whole crop: no margin to cut.
            resize = max(height, width)
        batch = torch.from_numpy(squares).to(self.device).permute(0, 3, 1, 2).float()
        if resize != self.side:
            mode = self.preprocessing.interpolation
            mode = mode if mode in ("bilinear", "bicubic", "nearest") else "bicubic"
            options = {} if mode == "nearest" else {"align_corners": False}
            batch = F.interpolate(
                batch,
                size=(resize, resize),
                mode=mode,
                antialias=mode != "nearest" and resize < self.side,
                **options,
            )
            if mode == "bicubic":
                batch = batch.clamp_(0, 255)
        top = (resize - height) // 2
        left = (resize - width) // 2
        batch = batch[:, :, top : top + height, left : left + width]
        batch = (batch / 255.0 - self.mean) / self.std
        return batch.contiguous(memory_format=torch.channels_last)


def store_side(preprocessings: Sequence[Preprocessing]) -> int:
    """The square side that serves every backbone: the largest resize size."""
    sides = [max(p.resize_size, *p.input_size) for p in preprocessings]
    return max(sides, default=224)
