"""Decoding image files to RGB arrays, and the hashes that identify them.

Every file goes through :func:`decode_image`, which refuses anything but a regular
file, identifies the format from the header, then reads the file once, hashes the
bytes, applies the EXIF orientation and turns whatever Pillow opened into an
``(H, W, 3)`` ``uint8`` RGB array. A file that cannot be used raises
:class:`~lazyvision.errors.ImageError` with a short reason a report can print.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lazyvision.errors import ImageError

logger = logging.getLogger(__name__)

BACKGROUND: tuple[int, int, int] = (255, 255, 255)

# Pillow's own default warning threshold (256 MiB as 24-bit RGB), so a file
# under our limit never sets off Pillow's DecompressionBombWarning unless the
# caller raises the limit.
DEFAULT_MAX_PIXELS: int = 89_478_485

SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF")

#: Side of the thumbnail each :class:`ImageInfo` carries: small enough that the
#: near-duplicate check holds every one in memory (768 bytes), large enough to
#: tell apart scans whose hashes collide.
THUMBNAIL_SIDE = 16

_CHUNK_BYTES = 1 << 20
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# What Pillow's decoders raise on a damaged file; anything else is a real bug.
_CORRUPT_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`decode_image` learned about one file.

    Attributes:
        digest: SHA-256 hex digest of the file bytes.
        width: Width in pixels at full resolution, after the EXIF orientation.
        height: Height in pixels at full resolution, after the EXIF orientation.
        mode: Pillow mode of the file as opened ("P", "I;16", "CMYK", ...).
        format: Pillow format name ("PNG", "JPEG", "MPO", ...).
        phash: 64-bit difference hash of the decoded RGB image.
        thumbnail: The :func:`thumbnail` of the decoded RGB image at
            :data:`THUMBNAIL_SIDE`, as its raw bytes (rows top to bottom, R, G, B
            per pixel), or None where it is not known; see
            :meth:`thumbnail_pixels`.
    """

    digest: str
    width: int
    height: int
    mode: str
    format: str
    phash: int
    thumbnail: bytes | None = field(default=None, repr=False)

    def thumbnail_pixels(self) -> np.ndarray | None:
        """The thumbnail as a read-only ``(side, side, 3)`` ``uint8`` array.

        Returns:
            The array, or None when there is no thumbnail or its length is not
            that of a :data:`THUMBNAIL_SIDE` square.

        Example:
            >>> info = ImageInfo("ab", 2, 2, "RGB", "PNG", 0, bytes(768))
            >>> info.thumbnail_pixels().shape
            (16, 16, 3)
        """
        if self.thumbnail is None or len(self.thumbnail) != THUMBNAIL_SIDE**2 * 3:
            return None
        pixels = np.frombuffer(self.thumbnail, dtype=np.uint8)
        return pixels.reshape(THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3)


def file_digest(path: str | Path) -> str:
    """Returns the SHA-256 hex digest of a file, read in 1 MiB chunks.

    Args:
        path: The file.

    Returns:
        The digest as 64 lowercase hex characters.

    Raises:
        ImageError: The file is missing, not a regular file, or cannot be read.

    Example:
        >>> file_digest("cat.png")  # doctest: +SKIP
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    _check_regular_file(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as err:
        raise _read_error(path, err) from err
    return digest.hexdigest()


def decode_image(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_side: int | None = None,
) -> tuple[np.ndarray, ImageInfo]:
    """Decodes one image file to RGB and describes it.

    Anything but a regular file (a directory, a FIFO, a device) is refused before
    it is opened. The format is identified from the file's header, so a file that
    is no image is refused without reading it all; an image is then read once and
    the digest is taken from the same bytes it is decoded from.

    The EXIF orientation is applied first. Then every Pillow mode becomes 8-bit
    RGB: grayscale is copied to three channels, transparency (an alpha channel
    or a palette/colour-key ``transparency``) is composited onto
    :data:`BACKGROUND`, CMYK uses Pillow's conversion (Adobe-inverted JPEGs are
    handled; embedded ICC profiles are not applied), and 16-bit, 32-bit integer
    and float images are stretched linearly from their own minimum..maximum to
    0..255. A constant high-depth image has no range to stretch and keeps its
    value clipped to 0..255 (so 0 stays black and anything above 255 is white);
    NaN and -inf become the minimum, +inf the maximum, and the pixels of a
    16-bit PNG's transparent grey level are left out of the range and turn
    white. Animated files give their first frame.

    Args:
        path: The image file: JPEG, PNG, BMP, TIFF, WebP or GIF.
        max_pixels: Largest width x height accepted, checked from the header
            before any pixel is decoded.
        draft_side: If given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale,
            never so small that its shorter side drops below this. The info
            still reports the full size.

    Returns:
        The pixels as a read-only C-contiguous ``(H, W, 3)`` ``uint8`` array
        (copy it before writing), and the file's :class:`ImageInfo`.

    Raises:
        ImageError: The file cannot be used. ``reason`` is one of "file not
            found", "empty file (0 bytes)", "not an image", "truncated or
            corrupt", "over the pixel limit (W x H = N > LIMIT)", "not a regular
            file", "permission denied", "unreadable (...)" or "unsupported mode
            '...'".
        ValueError: ``max_pixels`` or ``draft_side`` is not a positive integer.

    Example:
        >>> rgb, info = decode_image(Path("cat.png"))  # doctest: +SKIP
        >>> rgb.shape, info.format  # doctest: +SKIP
        ((480, 640, 3), 'PNG')
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer; got {max_pixels!r}")
    if draft_side is not None and draft_side < 1:
        raise ValueError(
            f"draft_side must be a positive integer or None; got {draft_side!r}"
        )
    data = _read_image_bytes(path, max_pixels)
    digest = hashlib.sha256(data).hexdigest()

    with _open(path, io.BytesIO(data), max_pixels) as image:
        width, height = image.size
        mode, image_format = image.mode, image.format or ""

        if draft_side is not None and image_format in ("JPEG", "MPO"):
            image.draft("RGB", (draft_side, draft_side))
            logger.debug("%s: decoding at %s of %s", path, image.size, (width, height))
        try:
            image.load()
            stored_size = image.size
            ImageOps.exif_transpose(image, in_place=True)
            rgb_image = _to_rgb(image, path)
        except ImageError:
            raise
        except _CORRUPT_ERRORS as err:
            raise ImageError(str(path), "truncated or corrupt") from err

        if image.size != stored_size:
            width, height = height, width
        info = ImageInfo(
            digest=digest,
            width=width,
            height=height,
            mode=mode,
            format=image_format,
            phash=_dhash(rgb_image),
            thumbnail=_thumbnail(rgb_image, THUMBNAIL_SIDE).tobytes(),
        )
        return np.asarray(rgb_image), info


def try_decode_image(
    path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, keep_pixels: bool = True
) -> tuple[ImageInfo | ImageError, np.ndarray | None]:
    """Decodes one file like :func:`decode_image`, returning a failure, not raising it.

    Made for process pools: a worker that runs it imports only this light module,
    and both outcomes pickle.

    Args:
        path: The image file.
        max_pixels: Largest width x height accepted.
        keep_pixels: Return the RGB array; without it only the info travels back.

    Returns:
        (info, pixels or None), or (the ImageError, None) for a file that cannot be
        used.

    Example:
        >>> info, _ = try_decode_image("gone.png", keep_pixels=False)
        >>> info.reason
        'file not found'
    """
    try:
        rgb, info = decode_image(path, max_pixels=max_pixels)
    except ImageError as err:
        return err, None
    return info, rgb if keep_pixels else None


def center_square(
    rgb: np.ndarray, side: int, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Crops the central square of an image and resizes it.

    The square has side ``min(H, W)`` and only its own pixels count. It is
    resized with the bicubic filter of Pillow at full precision, which widens its
    support when shrinking, so downsizing is antialiased.

    Args:
        rgb: An ``(H, W, 3)`` ``uint8`` array.
        side: The output side in pixels.
        out: A writable ``(side, side, 3)`` ``uint8`` array to write into (a slot
            of a larger store, say), saving a copy.

    Returns:
        ``out``, or a new writable ``(side, side, 3)`` ``uint8`` array.

    Raises:
        ValueError: ``rgb`` is not a non-empty ``(H, W, 3)`` ``uint8`` array,
            ``side`` is not a positive integer, or ``out`` has another shape or
            dtype.

    Example:
        >>> center_square(np.zeros((480, 640, 3), np.uint8), 224).shape
        (224, 224, 3)
    """
    _check_rgb(rgb, "rgb")
    if side < 1:
        raise ValueError(f"side must be a positive integer; got {side!r}")
    if out is None:
        out = np.empty((side, side, 3), np.uint8)
    elif out.shape != (side, side, 3) or out.dtype != np.uint8:
        raise ValueError(
            f"out must be a ({side}, {side}, 3) uint8 array; got shape "
            f"{out.shape!r}, dtype {out.dtype!r}"
        )
    height, width = rgb.shape[:2]
    crop = min(height, width)
    top, left = (height - crop) // 2, (width - crop) // 2

    square = rgb[top : top + crop, left : left + crop]
    if crop == side:
        np.copyto(out, square)
        return out
    # Cropping before resizing keeps pixels outside the square out of its edges.
    # torch's uint8 kernel for channels-last images computes Pillow's bicubic
    # filter (within one grey level) several times faster, and lets the decoding
    # threads run in parallel.
    import torch
    import torch.nn.functional as F

    if not square.flags.writeable or not square.flags.c_contiguous:
        # torch wraps writable memory only, and its fast kernel wants whole rows.
        square = np.array(square, order="C")
    # A (1, 3, H, W) view of the (H, W, 3) pixels, strided as channels-last, makes
    # the kernel return channels-last too: about half the time of planes, and
    # ``out`` is then filled by a plain copy.
    pixels = torch.from_numpy(square).unsqueeze(0).permute(0, 3, 1, 2)
    resized = F.interpolate(
        pixels, size=(side, side), mode="bicubic", antialias=True, align_corners=False
    )
    torch.from_numpy(out).copy_(resized[0].permute(1, 2, 0))
    return out


def difference_hash(rgb: np.ndarray) -> int:
    """Returns the 64-bit difference hash (dHash) of an RGB image.

    The image is turned to grayscale, box-averaged down to 9 x 8 and each bit
    says whether a pixel is brighter than its left neighbour. Re-encoded or
    resized copies of a picture land a few bits apart; compare with
    :func:`hamming`.

    Args:
        rgb: An ``(H, W, 3)`` ``uint8`` array.

    Returns:
        The hash, an integer in ``[0, 2**64)``, first row in the high bits.

    Raises:
        ValueError: ``rgb`` is not a non-empty ``(H, W, 3)`` ``uint8`` array.

    Example:
        >>> difference_hash(np.zeros((32, 32, 3), np.uint8))
        0
    """
    _check_rgb(rgb, "rgb")
    return _dhash(Image.fromarray(rgb))


def thumbnail(rgb: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Returns a tiny RGB copy of an image, each pixel the mean of its area.

    The whole frame is squeezed to a square, whatever its aspect ratio, with
    Pillow's box filter, so a resized copy of a picture gives nearly the same
    thumbnail and colours are kept (unlike :func:`difference_hash`, which only
    sees brightness steps).

    Args:
        rgb: An ``(H, W, 3)`` ``uint8`` array.
        side: The thumbnail side in pixels.

    Returns:
        A new ``(side, side, 3)`` ``uint8`` array.

    Raises:
        ValueError: ``rgb`` is not a non-empty ``(H, W, 3)`` ``uint8`` array, or
            ``side`` is not a positive integer.

    Example:
        >>> thumbnail(np.zeros((480, 640, 3), np.uint8)).shape
        (16, 16, 3)
    """
    _check_rgb(rgb, "rgb")
    if side < 1:
        raise ValueError(f"side must be a positive integer; got {side!r}")
    return np.array(_thumbnail(Image.fromarray(rgb), side))


def hamming(a: int, b: int) -> int:
    """Returns how many bits differ between two hashes.

    Example:
        >>> hamming(0b1011, 0b0001)
        2
    """
    return (a ^ b).bit_count()


def _check_regular_file(path: str | Path) -> int:
    """The size of a regular file; anything else is refused without opening it.

    Opening a FIFO blocks until a writer comes, and a device such as /dev/zero
    never ends, so the kind of file is checked first.
    """
    try:
        found = os.stat(path)
    except OSError as err:
        raise _read_error(path, err) from err
    if not stat.S_ISREG(found.st_mode):
        raise ImageError(str(path), "not a regular file")
    return found.st_size


def _read_image_bytes(path: str | Path, max_pixels: int) -> bytes:
    """Reads a whole file once its header shows a supported image within the limit."""
    if _check_regular_file(path) == 0:
        raise ImageError(str(path), "empty file (0 bytes)")
    try:
        with open(path, "rb") as file:
            # Pillow reads only the header here; the pixels are decoded later from
            # the bytes that are hashed.
            with _open(path, file, max_pixels):
                pass
            file.seek(0)
            data = file.read()
    except OSError as err:
        raise _read_error(path, err) from err
    if not data:
        raise ImageError(str(path), "empty file (0 bytes)")
    return data


def _read_error(path: str | Path, err: OSError) -> ImageError:
    """Turns an OSError from reading a file into an ImageError."""
    if isinstance(err, FileNotFoundError):
        return ImageError(str(path), "file not found")
    if isinstance(err, IsADirectoryError):
        return ImageError(str(path), "not a regular file")
    if isinstance(err, PermissionError):
        return ImageError(str(path), "permission denied")
    return ImageError(str(path), f"unreadable ({err.strerror or err})")


def _open(path: str | Path, file: BinaryIO, max_pixels: int) -> Image.Image:
    """Opens a file with Pillow (header only), refusing images over the limit."""
    try:
        image = Image.open(file, formats=SUPPORTED_FORMATS)
    except UnidentifiedImageError as err:
        raise ImageError(str(path), "not an image") from err
    except Image.DecompressionBombError as err:
        # Pillow refuses twice its own limit before we see the size; its message
        # carries the pixel count and that limit, not the width and height.
        found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(err))
        pixels, limit = (int(found[1]), int(found[2])) if found else (0, 0)
        if pixels > max_pixels:
            reason = f"over the pixel limit ({pixels} > {max_pixels})"
        else:
            # Only Pillow's own setting lets such a file in; the CLI raises it
            # with --max-pixels, a Python caller has to.
            reason = (
                f"over the pixel limit (Pillow refuses over {limit or '?'}; raise "
                "PIL.Image.MAX_IMAGE_PIXELS to let it in)"
            )
        raise ImageError(str(path), reason) from err
    except _CORRUPT_ERRORS as err:
        raise ImageError(str(path), "truncated or corrupt") from err

    width, height = image.size
    if width * height > max_pixels:
        image.close()
        reason = (
            f"over the pixel limit ({width} x {height} = {width * height} "
            f"> {max_pixels})"
        )
        raise ImageError(str(path), reason)
    return image


def _to_rgb(image: Image.Image, path: str | Path) -> Image.Image:
    """Converts a loaded image of any mode to an 8-bit RGB image."""
    if image.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(image)
        key = image.info.get("transparency")
        transparent = values == key if isinstance(key, int) else None
        rgb = Image.fromarray(_stretch_to_uint8(values, transparent)).convert("RGB")
        if transparent is not None:
            rgb.paste(BACKGROUND, mask=Image.fromarray(transparent))
        return rgb
    if image.has_transparency_data:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", image.size, BACKGROUND)
        background.paste(rgba, mask=rgba)
        return background
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as err:
        reason = f"unsupported mode {image.mode!r}"
        raise ImageError(str(path), reason) from err


def _stretch_to_uint8(values: np.ndarray, skip: np.ndarray | None) -> np.ndarray:
    """Maps a 2-D array's min..max, skip excluded, to 0..255 (see decode_image)."""
    floats = values.astype(np.float64)
    finite = np.isfinite(floats)
    if skip is not None:
        finite &= ~skip
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    low, high = floats[finite].min(), floats[finite].max()
    np.nan_to_num(floats, copy=False, nan=low, posinf=high, neginf=low)

    if high > low:
        floats -= low
        floats *= 255.0 / (high - low)
    else:
        np.clip(floats, 0.0, 255.0, out=floats)
    return np.rint(floats).astype(np.uint8)


def _dhash(image: Image.Image) -> int:
    """Difference hash of a Pillow image (see difference_hash)."""
    small = image.convert("L").resize((9, 8), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.int16)
    bits = pixels[:, 1:] > pixels[:, :-1]
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _thumbnail(image: Image.Image, side: int) -> Image.Image:
    """Thumbnail of a Pillow RGB image (see thumbnail)."""
    return image.resize((side, side), Image.Resampling.BOX)


def _check_rgb(rgb: np.ndarray, name: str) -> None:
    """Raises ValueError unless rgb is a non-empty (H, W, 3) uint8 array."""
    shape = getattr(rgb, "shape", None)
    dtype = getattr(rgb, "dtype", None)
    if (
        not isinstance(rgb, np.ndarray)
        or rgb.ndim != 3
        or rgb.shape[2] != 3
        or rgb.dtype != np.uint8
        or rgb.size == 0
    ):
        raise ValueError(
            f"{name} must be a non-empty (H, W, 3) uint8 array; "
            f"got shape {shape!r} dtype {dtype!r}"
        )
