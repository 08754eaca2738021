"""Decode each image once, run each backbone once per image, cache the embeddings.

Every timm evaluation transform resizes the shorter side and takes a centred crop,
so what any backbone sees of an image lies inside its central square. The decode
pass therefore keeps one thing per image: that square, resized once to the largest
side any requested backbone needs, in a temporary file. Each backbone then
resizes the squares to its own resolution in batches with its own interpolation,
crops, normalises and runs them, channels-last and in reduced precision where the
hardware has it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lazyvision._activations import swap_activations
from lazyvision._allocator import reuse_freed_memory
from lazyvision._fusion import fold_batchnorm
from lazyvision.backbones import Backbone, Preprocessing
from lazyvision.cache import (
    CACHE_VERSION,
    FeatureStore,
    locked,
    stable_hash,
    write_json_atomic,
)
from lazyvision.errors import BudgetExceeded, ImageError, ModelError
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo, center_square, decode_image

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: Images embedded between two cache writes; a crash loses at most this many.
CHUNK_SIZE = 256
#: Images one decoding thread takes at a time.
DECODE_TASK_SIZE = 16
#: Below this many images a thread pool costs more than it saves.
MIN_IMAGES_FOR_WORKERS = 64
#: The smallest batch tried after running out of memory.
MIN_BATCH_SIZE = 1
#: A run reports the throughput it timed itself once it timed this many full
#: batches after the first, and at least :data:`MIN_TIMED_IMAGES` images; below
#: that the figure is mostly set-up and noise, and one an earlier run timed
#: under the same conditions is better founded.
MIN_TIMED_BATCHES = 2
MIN_TIMED_IMAGES = 32
#: Where a reported throughput was timed (``Speed.source``).
THIS_RUN = "this run"
EARLIER_RUN = "earlier run"
#: The throughputs a feature-cache entry remembers, one per set of conditions.
#: (Before they were keyed by conditions they lived in "speed.json", now ignored.)
SPEEDS_FILE = "speeds.json"


def resolve_device(device: str = "auto") -> torch.device:
    """``cuda`` when available for ``auto``, else what was asked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise ModelError(
            f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'"
        ) from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            f"device {device!r} was asked for, but torch sees no CUDA GPU here; "
            "use 'auto' or 'cpu'"
        )
    return chosen


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
        "features",
        CACHE_VERSION,
        backbone.architecture,
        backbone.weights_id,
        backbone.preprocessing,
        str(dtype),
    )


class PixelStore:
    """Central squares of decoded images, one ``(N, side, side, 3)`` array per side.

    Each image is decoded once and its central square resized, straight from the
    decoded pixels, to every side a backbone of the run needs (the shorter-side
    resize of timm's transform: 256 for most 224-pixel models, 341 for a
    299-pixel one). A backbone then only crops and normalises. The squares live
    in temporary files, written and read at their offsets rather than mapped,
    so decoded pixels cost page cache, which the system can drop, and never
    the process's own memory: a batch is read into a fresh array when it runs.

    Args:
        capacity: The most images the store will hold.
        sides: Sides of the stored squares.
        folder: Where the temporary files live (removed by :meth:`close`).
        sources: The file of each image digest, for :meth:`ensure`.
        num_workers: Decoding threads.
        max_pixels: Decompression-bomb limit per image.
    """

    def __init__(
        self,
        capacity: int,
        sides: Sequence[int],
        folder: Path | None = None,
        *,
        sources: Mapping[str, Path] | None = None,
        num_workers: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.sides = tuple(sorted(set(sides)))
        if not self.sides:
            raise ValueError("a pixel store needs at least one side")
        self.capacity = max(capacity, 1)
        self.sources = dict(sources or {})
        self.num_workers = num_workers
        self.max_pixels = max_pixels
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []
        self.files: dict[int, int] = {}
        for side in self.sides:
            handle, name = tempfile.mkstemp(suffix=f".{side}px", dir=folder)
            self.paths.append(Path(name))
            self.files[side] = handle
        self.index: dict[str, int] = {}
        self.used = 0

    def for_side(self, side: int) -> PixelStore:
        """A store that holds ``side``: this one, or a new one decoding on demand.

        A backbone whose preprocessing was not known when the run's store was made
        (a model from a registered zoo) gets its own store rather than a second
        resize of another side's squares.
        """
        if side in self.files:
            return self
        return PixelStore(
            self.capacity,
            [side],
            self.folder,
            sources=self.sources,
            num_workers=self.num_workers,
            max_pixels=self.max_pixels,
        )

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

    def write(self, slot: int, side: int, square: np.ndarray) -> None:
        """Stores one ``(side, side, 3)`` ``uint8`` square in ``slot``."""
        size = side * side * 3
        data = np.ascontiguousarray(square, dtype=np.uint8).data
        written = os.pwrite(self.files[side], data, slot * size)
        if written != size:
            raise OSError(f"pixel store: wrote {written} of {size} bytes")

    def batch(self, digests: Sequence[str], side: int) -> np.ndarray:
        """Stored squares of one side for ``digests``, in order, as a new array.

        Images stored side by side, as a decode pass leaves them, are read in one
        call.
        """
        # torch's allocator, not numpy's: numpy advises huge pages for blocks of
        # 4 MiB and more, and with freed memory reused during extraction that
        # advice spreads to the heap the activations then fault in, which made
        # the kernel compact memory for them (1 to 4 times the forward's system
        # time, from run to run).
        shape = (len(digests), side, side, 3)
        squares = torch.empty(shape, dtype=torch.uint8).numpy()
        slots = [self.index[d] for d in digests]
        if slots and slots == list(range(slots[0], slots[0] + len(slots))):
            self._read(side, slots[0], squares)
        else:
            for row, slot in enumerate(slots):
                self._read(side, slot, squares[row])
        return squares

    def _read(self, side: int, slot: int, into: np.ndarray) -> None:
        size = side * side * 3
        done = os.preadv(self.files[side], [into.data], slot * size)
        if done != into.nbytes:
            raise OSError(f"pixel store: read {done} of {into.nbytes} bytes")

    def close(self) -> None:
        for handle in self.files.values():
            with contextlib.suppress(OSError):
                os.close(handle)
        self.files.clear()
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


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

    Files are decoded by a pool of threads when there are enough of them; each
    writes its squares into the store itself.

    Args:
        paths: Files to decode.
        store: Where to keep the squares; ``None`` only validates.
        max_pixels: Decompression-bomb limit per image.
        num_workers: Decoding threads; 0 or 1 decodes in the calling thread.

    Returns:
        One result per path, in order.
    """
    first = store.allocate(len(paths)) if store is not None else 0

    def decode(job: tuple[int, Path]) -> DecodeResult:
        slot, path = job
        largest = store.sides[-1] if store is not None else None
        try:
            rgb, info = decode_image(path, max_pixels=max_pixels, draft_side=largest)
        except ImageError as err:
            return DecodeResult(path=path, info=None, error=err)
        if store is not None:
            for side in store.sides:
                store.write(slot, side, center_square(rgb, side))
        return DecodeResult(path=path, info=info, error=None)

    jobs = list(enumerate(paths, start=first))
    if num_workers > 1 and len(paths) >= MIN_IMAGES_FOR_WORKERS:
        # Threads, not processes: Pillow releases the GIL while it decodes and
        # resizes, and threads need no picklable state nor a main-module guard
        # in the user's script.
        # A few images per task: one task per image spends more time handing
        # the GIL between the submitting thread and the workers than decoding.
        tasks = [
            jobs[i : i + DECODE_TASK_SIZE]
            for i in range(0, len(jobs), DECODE_TASK_SIZE)
        ]
        with ThreadPoolExecutor(num_workers, thread_name_prefix="decode") as pool:
            done = pool.map(lambda task: [decode(job) for job in task], tasks)
            results = [result for task in done for result in task]
    else:
        results = [decode(job) for job in jobs]
    if store is not None:
        for (slot, _), result in zip(jobs, results, strict=True):
            if result.info is not None:
                store.index.setdefault(result.info.digest, slot)
    return results


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
        key: The feature-cache entry, as named by :func:`feature_key`.
        speed: The throughput to report, and where it was timed (see
            :func:`settle_speed`); ``None`` when none is known.
    """

    embeddings: np.ndarray
    num_computed: int
    seconds: float
    batch_size: int
    dtype: str
    key: str = ""
    speed: Speed | None = None

    @property
    def images_per_second(self) -> float | None:
        """The throughput to report, or ``None``."""
        return None if self.speed is None else self.speed.images_per_second


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
    key = feature_key(backbone, dtype)
    store = FeatureStore(cache_dir / "features" / key)
    store.folder.mkdir(parents=True, exist_ok=True)
    with locked(store.lock_path):
        cached = store.load()
        missing = list(dict.fromkeys(d for d in digests if d not in cached))
        num_images = len(set(digests))
        if 0 < len(missing) < num_images:
            logger.info(
                "%s: %d of %d images already embedded in the cache; embedding the "
                "other %d",
                backbone.name,
                num_images - len(missing),
                num_images,
                len(missing),
            )
        if progress is not None and len(digests) > len(missing):
            progress(len(digests) - len(set(missing)))
        start = time.perf_counter()
        run = _Run(batch_size, 0, 0.0)
        if missing:
            side = BatchPreparer.stored_side(backbone.preprocessing)
            own = pixels.for_side(side)
            try:
                own.ensure(missing)
                with _reusing_memory(device):
                    run = _run_backbone(
                        backbone,
                        missing,
                        pixels=own,
                        side=side,
                        store=store,
                        into=cached,
                        batch_size=batch_size,
                        device=device,
                        dtype=dtype,
                        deadline=deadline,
                        progress=progress,
                    )
            finally:
                if own is not pixels:
                    own.close()
        seconds = time.perf_counter() - start
        conditions = speed_conditions(
            batch_size=batch_size, device=device, precision=_dtype_name(dtype)
        )
        speed = settle_speed(store.folder, conditions, run)
    if speed is not None and speed.source == EARLIER_RUN:
        logger.debug(
            "%s: %d images timed here, too few; reporting the %.4g img/s an earlier "
            "run timed at %s",
            backbone.name,
            run.timed_images,
            speed.images_per_second,
            conditions,
        )
    embeddings = np.stack([cached[d] for d in digests]) if digests else np.zeros((0, 0))
    return Extraction(
        embeddings=embeddings.astype(np.float32, copy=False),
        num_computed=len(missing),
        seconds=seconds,
        batch_size=run.batch_size,
        dtype=_dtype_name(dtype),
        key=key,
        speed=speed,
    )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class Speed(NamedTuple):
    """A backbone's throughput and where it was timed.

    Attributes:
        images_per_second: Images embedded per second after the first batch.
        num_timed: The images it was timed on.
        source: :data:`THIS_RUN` or :data:`EARLIER_RUN`.
    """

    images_per_second: float
    num_timed: int
    source: str


def speed_conditions(*, batch_size: int, device: torch.device, precision: str) -> str:
    """What a throughput depends on besides the backbone, in words that key the
    throughputs a cache entry remembers: "batch 64, cpu, bfloat16, 8 threads".

    ``batch_size`` is the size asked for: a run that runs out of memory at it
    halves it again the same way.
    """
    name = device.type
    if device.type == "cuda":
        name = f"cuda {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads()
    return f"batch {batch_size}, {name}, {precision}, {threads} threads"


def settle_speed(folder: Path, conditions: str, run: _Run) -> Speed | None:
    """The throughput to report for a run, remembering this run's where it is
    the better founded. Called under the cache entry's lock.

    A run that timed enough images (:data:`MIN_TIMED_BATCHES`,
    :data:`MIN_TIMED_IMAGES`) reports what it timed. One that timed fewer, because
    the cache held most of its images, reports what an earlier run timed on more
    images under the same ``conditions`` (see :func:`speed_conditions`), if one
    did; a figure timed at another batch size, on another device, precision or
    thread count is never reported.

    Args:
        folder: The cache entry.
        conditions: This run's conditions.
        run: How this run's extraction ran.
    """
    known = remembered_speed(folder, conditions)
    if run.timed_images == 0 or run.timed_seconds <= 0:
        return known
    own = Speed(run.timed_images / run.timed_seconds, run.timed_images, THIS_RUN)
    enough = max(MIN_TIMED_BATCHES * run.batch_size, MIN_TIMED_IMAGES)
    # Too few images here, and more behind the earlier figure.
    if known is not None and own.num_timed < min(enough, known.num_timed):
        return known
    saved = _read_speeds(folder)
    saved[conditions] = {
        "images_per_second": own.images_per_second,
        "num_timed": own.num_timed,
    }
    write_json_atomic(folder / SPEEDS_FILE, {"measured": saved})
    return own


def remembered_speed(folder: Path, conditions: str) -> Speed | None:
    """The throughput an earlier run timed under ``conditions`` in this cache
    entry, if any."""
    saved = _read_speeds(folder).get(conditions)
    if not isinstance(saved, dict):
        return None
    try:
        images_per_second = float(saved["images_per_second"])
        num_timed = int(saved["num_timed"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (images_per_second > 0 and num_timed > 0):
        return None
    return Speed(images_per_second, num_timed, EARLIER_RUN)


def _read_speeds(folder: Path) -> dict[str, Any]:
    try:
        saved = json.loads((folder / SPEEDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    measured = saved.get("measured") if isinstance(saved, dict) else None
    return dict(measured) if isinstance(measured, dict) else {}


class _Run(NamedTuple):
    """How one extraction ran.

    The throughput is timed from the end of the first batch on: the first pays
    for one-off work (kernels chosen and compiled, the operation count, and on
    a freshly installed machine whatever loads on first use), and timed with it
    a first run has shown a backbone at an eighth of its speed. With one batch
    only, that batch is all there is to time.
    """

    batch_size: int
    timed_images: int
    timed_seconds: float


def _run_backbone(
    backbone: Backbone,
    missing: list[str],
    *,
    pixels: PixelStore,
    side: int,
    store: FeatureStore,
    into: dict[str, np.ndarray],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    deadline: float | None,
    progress: Callable[[int], None] | None,
) -> _Run:
    """Runs the backbone over ``missing`` in chunks; says how it ran."""
    start = time.perf_counter()
    first: tuple[int, float] | None = None  # images of the first batch, its end
    model = prepare_model(backbone.model, device)
    # The first batch also counts the backbone's operations, at no extra pass.
    counting = backbone.macs_per_image is None
    prepare = BatchPreparer(backbone.preprocessing, side, device)
    for chunk_start in range(0, len(missing), CHUNK_SIZE):
        chunk = missing[chunk_start : chunk_start + CHUNK_SIZE]
        outputs: list[np.ndarray] = []
        position = 0
        while position < len(chunk):
            if deadline is not None and time.monotonic() > deadline:
                raise BudgetExceeded("time budget ran out during extraction")
            batch = chunk[position : position + batch_size]
            counter = FlopCounterMode(display=False) if counting else None
            try:
                with counter or contextlib.nullcontext():
                    outputs.append(
                        _forward(model, prepare(pixels.batch(batch, side)), dtype)
                    )
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
            if counter is not None:
                backbone.macs_per_image = counter.get_total_flops() // 2 // len(batch)
                counting = False
            position += len(batch)
            first = first or (len(batch), time.perf_counter())
            if progress is not None:
                progress(len(batch))
        matrix = np.concatenate(outputs)
        store.write_chunk(chunk, matrix)
        into.update(zip(chunk, matrix, strict=True))
    end = time.perf_counter()
    if first is None or first[0] == len(missing):
        return _Run(batch_size, len(missing), end - start)
    return _Run(batch_size, len(missing) - first[0], end - first[1])


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Readies ``model`` for extraction, in place: evaluation mode, on ``device``,
    channels-last, BatchNorm folded into the convolutions that feed it, and on the
    CPU, ReLU and ReLU6 computed on the bits of 16-bit floats.

    This is the model whose forward pass extraction times; the benchmark times the
    same one.
    """
    model = model.to(device).eval()
    if device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    folded = fold_batchnorm(model)
    if folded:
        logger.debug("folded %d BatchNorm layers into their convolutions", folded)
    if device.type == "cpu":
        swapped = swap_activations(model)
        logger.debug("%d ReLU layers clamp 16-bit floats as integers", swapped)
    return model


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


def _reusing_memory(device: torch.device) -> contextlib.AbstractContextManager[bool]:
    """On the CPU, freed activation maps are reused rather than unmapped."""
    if device.type == "cpu":
        return reuse_freed_memory()
    return contextlib.nullcontext(False)


def _free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class BatchPreparer:
    """Turns stored squares into a backbone's normalised input batch.

    Resizes each square to the backbone's resize size with its interpolation
    (antialiased when shrinking, as Pillow does), takes the centred crop, scales to
    0..1 and normalises with the backbone's mean and std. The crop is taken on the
    uint8 pixels and copied into a channels-last float batch, which is then
    normalised in place, one row of interleaved pixels at a time.
    """

    def __init__(self, preprocessing: Preprocessing, side: int, device: torch.device):
        self.preprocessing = preprocessing
        self.side = side
        self.device = device
        height, width = preprocessing.input_size
        self.resize = self.stored_side(preprocessing)
        self.top = (self.resize - height) // 2
        self.left = (self.resize - width) // 2
        mean = torch.tensor(preprocessing.mean, device=device) * 255.0
        scale = 1.0 / (torch.tensor(preprocessing.std, device=device) * 255.0)
        # A channels-last row is ``width`` interleaved pixels, so the per-channel
        # constants are repeated along it: broadcasting a (1, 3, 1, 1) shape over
        # channels-last memory instead runs a loop of three, about 6x slower.
        self.row_scale = scale.repeat(width)
        self.row_shift = (-mean * scale).repeat(width)

    @staticmethod
    def stored_side(preprocessing: Preprocessing) -> int:
        """The side of the square this preprocessing crops from."""
        height, width = preprocessing.input_size
        if preprocessing.crop_mode == "squash":
            # The stored square is already the whole crop: no margin to cut.
            return max(height, width)
        return max(preprocessing.resize_size, height, width)

    def __call__(self, squares: np.ndarray) -> torch.Tensor:
        height, width = self.preprocessing.input_size
        rows = slice(self.top, self.top + height)
        columns = slice(self.left, self.left + width)
        pixels = torch.from_numpy(squares).to(self.device)  # (B, S, S, 3) uint8
        if self.resize == self.side:
            crop = pixels[:, rows, columns].permute(0, 3, 1, 2)
        else:
            crop = self._resize(_channels_last(pixels).float())[:, :, rows, columns]
        batch = torch.empty(
            (len(squares), 3, height, width),
            device=self.device,
            memory_format=torch.channels_last,
        )
        batch.copy_(crop)
        flat = batch.permute(0, 2, 3, 1).view(-1, width * 3)
        torch.addcmul(self.row_shift, flat, self.row_scale, out=flat)
        return batch

    def _resize(self, batch: torch.Tensor) -> torch.Tensor:
        mode = self.preprocessing.interpolation
        mode = mode if mode in ("bilinear", "bicubic", "nearest") else "bicubic"
        options = {} if mode == "nearest" else {"align_corners": False}
        resized = F.interpolate(
            batch,
            size=(self.resize, self.resize),
            mode=mode,
            antialias=mode != "nearest" and self.resize < self.side,
            **options,
        )
        # Bicubic overshoots at sharp edges; Pillow clips to the pixel range.
        return resized.clamp_(0, 255) if mode == "bicubic" else resized


def _channels_last(pixels: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 to a (B, 3, H, W) view with channels-last strides."""
    return pixels.contiguous().permute(0, 3, 1, 2)


def store_sides(preprocessings: Sequence[Preprocessing]) -> list[int]:
    """The square sides that serve every backbone without a second resize."""
    return sorted({BatchPreparer.stored_side(p) for p in preprocessings}) or [224]
