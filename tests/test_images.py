"""Tests for lazyvision.images: decoding, hashes and the centre square."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_sample_image

from lazyvision.errors import ImageError
from lazyvision.images import (
    BACKGROUND,
    DEFAULT_MAX_PIXELS,
    THUMBNAIL_SIDE,
    ImageInfo,
    center_square,
    decode_image,
    difference_hash,
    file_digest,
    hamming,
    thumbnail,
    try_decode_image,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)


def save(image: Image.Image, path: Path, **options: Any) -> Path:
    image.save(path, **options)
    return path


def pixels(rgb: np.ndarray) -> list[list[list[int]]]:
    values: list[list[list[int]]] = rgb.tolist()
    return values


def high_depth(mode: str, values: np.ndarray) -> Image.Image:
    image = Image.new(mode, (values.shape[1], values.shape[0]))
    for (y, x), value in np.ndenumerate(values):
        image.putpixel((x, y), float(value) if mode == "F" else int(value))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data does not have."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def digits() -> list[Image.Image]:
    """The first ten scikit-learn digits, upscaled to 128 px, dark on white."""
    images = load_digits().images[:10]
    return [
        Image.fromarray((255 - image * 255 / 16).astype(np.uint8))
        .resize((128, 128), Image.Resampling.BICUBIC)
        .convert("RGB")
        for image in images
    ]


# Modes


def test_mode_1_becomes_black_and_white(tmp_path: Path) -> None:
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    rgb, info = decode_image(save(image, tmp_path / "a.png"))
    assert info.mode == "1"
    assert pixels(rgb) == [[[0, 0, 0], [255, 255, 255]]]


def test_mode_l_is_copied_to_three_channels(tmp_path: Path) -> None:
    image = Image.new("L", (2, 1), 77)
    image.putpixel((1, 0), 200)
    rgb, info = decode_image(save(image, tmp_path / "a.png"))
    assert info.mode == "L"
    assert pixels(rgb) == [[[77, 77, 77], [200, 200, 200]]]


def test_mode_la_is_composited_onto_white(tmp_path: Path) -> None:
    image = Image.new("LA", (3, 1), (40, 255))
    image.putpixel((1, 0), (40, 0))
    image.putpixel((2, 0), (40, 128))
    rgb, info = decode_image(save(image, tmp_path / "a.png"))
    assert info.mode == "LA"
    blend = round((40 * 128 + 255 * 127) / 255)
    assert rgb[0, 0].tolist() == [40] * 3
    assert rgb[0, 1].tolist() == list(BACKGROUND)
    assert np.abs(rgb[0, 2].astype(int) - blend).max() <= 1


def palette_image() -> Image.Image:
    image = Image.new("P", (3, 1), 0)
    image.putpalette([*RED, *GREEN, *BLUE] + [0] * (253 * 3))
    image.putpixel((1, 0), 1)
    image.putpixel((2, 0), 2)
    return image


def test_mode_p_without_transparency(tmp_path: Path) -> None:
    rgb, info = decode_image(save(palette_image(), tmp_path / "a.png"))
    assert info.mode == "P"
    assert pixels(rgb) == [[list(RED), list(GREEN), list(BLUE)]]


@pytest.mark.parametrize("name", ["a.png", "a.gif"])
def test_mode_p_with_transparency_goes_through_rgba(tmp_path: Path, name: str) -> None:
    path = save(palette_image(), tmp_path / name, transparency=1)
    assert "transparency" in Image.open(path).info
    rgb, info = decode_image(path)
    assert info.mode == "P"
    assert pixels(rgb) == [[list(RED), list(BACKGROUND), list(BLUE)]]


def test_mode_rgb_is_exact(tmp_path: Path) -> None:
    image = Image.new("RGB", (2, 1), (10, 20, 30))
    image.putpixel((1, 0), (250, 128, 3))
    rgb, info = decode_image(save(image, tmp_path / "a.png"))
    assert (info.mode, info.width, info.height) == ("RGB", 2, 1)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 2, 3)
    assert rgb.flags.c_contiguous
    assert pixels(rgb) == [[[10, 20, 30], [250, 128, 3]]]


def test_rgb_colour_key_transparency_becomes_white(tmp_path: Path) -> None:
    key = (10, 20, 30)
    image = Image.new("RGB", (2, 1), key)
    image.putpixel((1, 0), RED)
    rgb, _ = decode_image(save(image, tmp_path / "a.png", transparency=key))
    assert pixels(rgb) == [[list(BACKGROUND), list(RED)]]


def test_grey_colour_key_transparency_becomes_white(tmp_path: Path) -> None:
    image = Image.new("L", (2, 1), 7)
    image.putpixel((1, 0), 99)
    rgb, _ = decode_image(save(image, tmp_path / "a.png", transparency=7))
    assert pixels(rgb) == [[list(BACKGROUND), [99, 99, 99]]]


def test_mode_rgba_is_composited_onto_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (3, 1), (200, 100, 0, 255))
    image.putpixel((1, 0), (200, 100, 0, 0))
    image.putpixel((2, 0), (0, 0, 0, 64))
    rgb, info = decode_image(save(image, tmp_path / "a.png"))
    assert info.mode == "RGBA"
    assert rgb[0, 0].tolist() == [200, 100, 0]
    assert rgb[0, 1].tolist() == list(BACKGROUND)
    expected = round(255 * (255 - 64) / 255)
    assert np.abs(rgb[0, 2].astype(int) - expected).max() <= 1


def test_cmyk_jpeg_with_adobe_inversion_decodes_red(tmp_path: Path) -> None:
    image = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    path = save(image, tmp_path / "red.jpg", quality=95)
    assert Image.open(path).info.get("adobe") is not None
    rgb, info = decode_image(path)
    assert (info.mode, info.format) == ("CMYK", "JPEG")
    assert np.abs(rgb.astype(int) - RED).max() <= 2


def test_cmyk_tiff(tmp_path: Path) -> None:
    image = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 255, 0))
    rgb, info = decode_image(save(image, tmp_path / "a.tif"))
    assert info.mode == "CMYK"
    assert pixels(rgb) == [[[255, 255, 255], list(GREEN)]]


@pytest.mark.parametrize(
    ("mode", "name"),
    [("I;16", "a.png"), ("I;16", "a.tif"), ("I;16B", "a.tif")],
)
def test_16_bit_is_stretched_by_its_own_range(
    tmp_path: Path, mode: str, name: str
) -> None:
    values = np.array([[1000, 2000], [3000, 1500]])
    path = save(high_depth(mode, values), tmp_path / name)
    rgb, info = decode_image(path)
    assert info.mode == mode
    assert pixels(rgb[..., 0]) == [[0, 128], [255, 64]]
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_16_bit_colour_key_is_white_and_out_of_the_range(tmp_path: Path) -> None:
    image = high_depth("I;16", np.array([[0, 1000, 3000, 2000]]))
    rgb, _ = decode_image(save(image, tmp_path / "a.png", transparency=0))
    assert pixels(rgb[..., 0]) == [[255, 0, 255, 128]]


def test_32_bit_integer_is_stretched(tmp_path: Path) -> None:
    values = np.array([[-70000, 0], [70000, 5]], dtype=np.int32)
    rgb, info = decode_image(save(Image.fromarray(values), tmp_path / "a.tif"))
    assert info.mode == "I"
    assert pixels(rgb[..., 1]) == [[0, 128], [255, 128]]


def test_float_is_stretched_and_nan_is_the_minimum(tmp_path: Path) -> None:
    values = np.array([[-1.5, np.nan], [2.5, 0.5]], dtype=np.float32)
    rgb, info = decode_image(save(Image.fromarray(values), tmp_path / "a.tif"))
    assert info.mode == "F"
    assert pixels(rgb[..., 0]) == [[0, 0], [255, 128]]


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (40, 40), (5000, 255)])
def test_constant_16_bit_keeps_its_value_clipped(
    tmp_path: Path, value: int, expected: int
) -> None:
    image = high_depth("I;16", np.full((2, 2), value))
    rgb, _ = decode_image(save(image, tmp_path / "a.png"))
    assert (rgb == expected).all()


# Formats


@pytest.mark.parametrize(
    ("name", "options", "tolerance"),
    [
        ("a.jpg", {"quality": 95}, 6),
        ("a.png", {}, 0),
        ("a.bmp", {}, 0),
        ("a.tif", {}, 0),
        ("a.webp", {"lossless": True}, 0),
        ("a.gif", {}, 0),
    ],
)
def test_formats_decode_to_their_pixels(
    tmp_path: Path, name: str, options: dict[str, Any], tolerance: int
) -> None:
    expected = np.zeros((32, 48, 3), np.uint8)
    expected[:] = BLUE
    expected[:16, :24] = RED
    path = save(Image.fromarray(expected), tmp_path / name, **options)
    rgb, info = decode_image(path)
    assert info.format == Image.open(path).format
    assert (info.width, info.height) == (48, 32)
    assert rgb.shape == (32, 48, 3)
    # JPEG smears chroma across the colour edge, so compare away from it.
    inner = (slice(2, 14), slice(2, 22))
    assert np.abs(rgb[inner].astype(int) - RED).max() <= tolerance
    assert np.abs(rgb[20:, 30:].astype(int) - BLUE).max() <= tolerance


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), colour) for colour in (RED, GREEN, BLUE)]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(path).n_frames == 3
    rgb, _ = decode_image(path)
    assert (rgb == RED).all()


# EXIF orientation


@pytest.mark.parametrize(("orientation", "red_corner"), [(6, (0, 1)), (8, (1, 0))])
def test_exif_orientation_is_applied(
    tmp_path: Path, orientation: int, red_corner: tuple[int, int]
) -> None:
    # 16 px squares line up with JPEG's colour blocks, so the corners stay clean.
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:] = BLUE
    stored[:16, :16] = RED  # top-left as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(stored), tmp_path / "a.jpg", exif=exif, quality=95)
    rgb, info = decode_image(path)

    assert rgb.shape == (64, 32, 3)
    assert (info.width, info.height) == (32, 64)
    for row, column in [(0, 0), (0, 1), (3, 0), (3, 1)]:
        corner = rgb[row * 16 : row * 16 + 16, column * 16 : column * 16 + 16]
        colour = RED if (row // 3, column) == red_corner else BLUE
        assert np.abs(corner[3:-3, 3:-3].astype(int) - colour).max() <= 8


# Bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.png"
    with pytest.raises(ImageError, match=r"gone\.png: file not found") as caught:
        decode_image(path)
    assert (caught.value.path, caught.value.reason) == (str(path), "file not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty file \(0 bytes\)"):
        decode_image(path)


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_not_a_regular_file_is_refused_before_it_is_opened(
    tmp_path: Path, kind: str
) -> None:
    """Opening a FIFO would wait for a writer forever; /dev/zero never ends."""
    path = tmp_path / "a.png"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/zero")

    with pytest.raises(ImageError, match=r"not a regular file$") as caught:
        decode_image(path)
    assert caught.value.reason == "not a regular file"
    with pytest.raises(ImageError, match=r"not a regular file$"):
        file_digest(path)
    failure, pixels = try_decode_image(path)
    assert isinstance(failure, ImageError) and pixels is None


def test_large_non_image_is_refused_from_its_header(tmp_path: Path) -> None:
    """A 256 MiB file that is no image is refused without being read into memory."""
    path = tmp_path / "huge.png"
    with path.open("wb") as file:
        file.write(b"label,path\ncat,x.png\n")
        file.truncate(256 << 20)  # sparse: no disk space is used

    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r"not an image$"):
            decode_image(path)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 16 << 20


@pytest.mark.parametrize("content", [b"label,path\ncat,x.png\n", b"\x89PNG\r\nxx"])
def test_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=r"not an image$"):
        decode_image(path)


def test_unsupported_format_is_not_an_image(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (4, 4)), tmp_path / "a.ppm")
    with pytest.raises(ImageError, match=r"not an image$"):
        decode_image(path)


@pytest.mark.parametrize("name", ["a.jpg", "a.png"])
def test_truncated_file(tmp_path: Path, name: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = save(Image.fromarray(noise), tmp_path / name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"truncated or corrupt$"):
        decode_image(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "claims.png"
    path.write_bytes(png_header_only(300, 200))
    reason = r"over the pixel limit \(300 x 200 = 60000 > 50000\)$"
    with pytest.raises(ImageError, match=reason):
        decode_image(path, max_pixels=50_000)
    with pytest.raises(ImageError, match=r"truncated or corrupt$"):
        decode_image(path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_default_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10_000, 10_000))
    reason = rf"10000 x 10000 = 100000000 > {DEFAULT_MAX_PIXELS}\)$"
    with pytest.raises(ImageError, match=reason):
        decode_image(path)


def test_pillow_refusal_is_reported_as_the_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))
    with pytest.raises(ImageError, match=r"over the pixel limit \(400000000 > 10\)$"):
        decode_image(path, max_pixels=10)


def test_pillow_refusal_above_a_raised_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))
    pillow = (
        r"\(Pillow refuses over \d+; raise PIL\.Image\.MAX_IMAGE_PIXELS to let it in\)$"
    )
    with pytest.raises(ImageError, match=pillow):
        decode_image(path, max_pixels=10**9)


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (4, 4)), tmp_path / "a.png")
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        decode_image(path, max_pixels=0)
    with pytest.raises(ValueError, match="draft_side must be a positive integer"):
        decode_image(path, draft_side=0)


# Draft decoding


@pytest.mark.parametrize(
    ("draft_side", "decoded"),
    [(None, (600, 800)), (100, (150, 200)), (300, (300, 400)), (301, (600, 800))],
)
def test_jpeg_draft_keeps_the_shorter_side(
    tmp_path: Path, draft_side: int | None, decoded: tuple[int, int]
) -> None:
    expected = np.zeros((600, 800, 3), np.uint8)
    expected[:] = BLUE
    expected[:300, :400] = RED
    path = save(Image.fromarray(expected), tmp_path / "a.jpg", quality=90)
    rgb, info = decode_image(path, draft_side=draft_side)
    assert rgb.shape[:2] == decoded
    assert min(rgb.shape[:2]) >= (draft_side or 0)
    assert (info.width, info.height) == (800, 600)
    height, width = decoded
    top_left = rgb[: height // 2 - 4, : width // 2 - 4].astype(int)
    assert np.abs(top_left - RED).max() <= 8


def test_draft_is_jpeg_only(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (800, 600), GREEN), tmp_path / "a.png")
    rgb, _ = decode_image(path, draft_side=100)
    assert rgb.shape == (600, 800, 3)


def test_draft_with_exif_rotation_reports_the_full_oriented_size(
    tmp_path: Path,
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(Image.new("RGB", (800, 400), RED), tmp_path / "a.jpg", exif=exif)
    rgb, info = decode_image(path, draft_side=100)
    assert rgb.shape == (200, 100, 3)
    assert (info.width, info.height) == (400, 800)


# Digests


def test_digest_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (9, 7), GREEN), tmp_path / "a.png")
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    _, info = decode_image(path)
    assert info.digest == expected == file_digest(path)


def test_file_digest_streams_large_files(tmp_path: Path) -> None:
    data = np.random.default_rng(1).bytes(3 * (1 << 20) + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()
    assert file_digest(str(path)) == hashlib.sha256(data).hexdigest()


def test_file_digest_of_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="file not found"):
        file_digest(tmp_path / "gone.png")


def test_image_info_is_frozen(tmp_path: Path) -> None:
    _, info = decode_image(save(Image.new("RGB", (2, 2)), tmp_path / "a.png"))
    assert isinstance(info, ImageInfo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.width = 3  # type: ignore[misc]


# Centre square


def test_center_square_of_a_wide_image(tmp_path: Path) -> None:
    rgb = np.zeros((60, 100, 3), np.uint8)
    rgb[:] = RED
    rgb[:, 20:80] = GREEN
    rgb[28:32, 48:52] = BLUE  # marks the centre

    same = center_square(rgb, 60)
    assert same.shape == (60, 60, 3) and same.flags.writeable
    assert np.array_equal(same, rgb[:, 20:80])

    small = center_square(rgb, 30)
    assert small.shape == (30, 30, 3) and small.dtype == np.uint8
    assert small[..., 0].max() == 0  # no red from outside the square
    assert small[15, 15, 2] > 100 and small[2, 2].tolist() == list(GREEN)


def test_center_square_of_a_tall_image_upscaled() -> None:
    rgb = np.zeros((90, 40, 3), np.uint8)
    rgb[:] = RED
    rgb[25:65] = GREEN
    big = center_square(rgb, 80)
    assert big.shape == (80, 80, 3)
    assert big[..., 0].max() == 0
    assert np.abs(big.astype(int) - GREEN).max() <= 1


def test_center_square_writes_into_a_given_slot() -> None:
    rgb = np.asarray(Image.fromarray(load_sample_image("flower.jpg")))  # read-only
    store = np.zeros((2, 50, 50, 3), np.uint8)
    slot = store[1]
    assert center_square(rgb, 50, out=slot) is slot
    assert np.array_equal(store[1], center_square(rgb, 50))
    assert not store[0].any()
    small = rgb[:50, :70]
    center_square(small, 50, out=store[0])
    assert np.array_equal(store[0], small[:, 10:60])
    with pytest.raises(ValueError, match=r"out must be a \(50, 50, 3\) uint8 array"):
        center_square(rgb, 50, out=np.zeros((50, 50, 3), np.float32))


def test_center_square_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"rgb must be a non-empty \(H, W, 3\) uint8"):
        center_square(np.zeros((4, 4), np.uint8), 2)
    with pytest.raises(ValueError, match="dtype dtype\\('float32'\\)"):
        center_square(np.zeros((4, 4, 3), np.float32), 2)
    with pytest.raises(ValueError, match="side must be a positive integer; got 0"):
        center_square(np.zeros((4, 4, 3), np.uint8), 0)


# Hashes


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(0, 2**64 - 1) == 64


def test_difference_hash_of_flat_and_gradient_images() -> None:
    assert difference_hash(np.full((16, 16, 3), 90, np.uint8)) == 0
    ramp = np.tile(np.arange(0, 256, 8, dtype=np.uint8)[None, :, None], (32, 1, 3))
    assert difference_hash(ramp) == 2**64 - 1


def test_difference_hash_survives_jpeg_and_resize(
    tmp_path: Path, digits: list[Image.Image]
) -> None:
    for image in digits:
        original = difference_hash(np.asarray(image))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=60)
        reencoded = np.asarray(Image.open(buffer).convert("RGB"))
        resized = np.asarray(image.resize((77, 77), Image.Resampling.BILINEAR))
        assert hamming(original, difference_hash(reencoded)) <= 10
        assert hamming(original, difference_hash(resized)) <= 10
        assert 0 <= original < 2**64


def test_difference_hash_tells_digits_apart(digits: list[Image.Image]) -> None:
    hashes = [difference_hash(np.asarray(image)) for image in digits]
    assert hamming(hashes[0], hashes[1]) > 16
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert np.mean(distances) > 10


def test_phash_is_the_difference_hash_of_the_decoded_pixels(
    tmp_path: Path, digits: list[Image.Image]
) -> None:
    rgb, info = decode_image(save(digits[3], tmp_path / "a.png"))
    assert info.phash == difference_hash(rgb) == difference_hash(np.asarray(digits[3]))


# Thumbnails


def test_thumbnail_averages_each_area() -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2, :2] = RED
    rgb[2:, 2:] = BLUE
    rgb[0, 0] = GREEN

    small = thumbnail(rgb, side=2)

    assert small.shape == (2, 2, 3)
    assert small.flags.writeable
    assert np.abs(small[0, 0] - [255 * 3 / 4, 255 / 4, 0]).max() <= 1
    assert pixels(small[1]) == [[0, 0, 0], list(BLUE)]
    assert thumbnail(np.zeros((480, 640, 3), np.uint8)).shape == (16, 16, 3)


def test_thumbnail_of_a_resized_copy_is_close(digits: list[Image.Image]) -> None:
    for image in digits:
        smaller = image.resize((64, 64), Image.Resampling.BILINEAR)
        original = thumbnail(np.asarray(image)).astype(int)
        resized = thumbnail(np.asarray(smaller)).astype(int)
        assert np.abs(original - resized).mean() < 3


def rotated_jpeg(path: Path, digit: Image.Image) -> Path:
    """A 300 x 200 JPEG of a digit, stored on its side with an EXIF rotation."""
    exif = Image.Exif()
    exif[0x0112] = 6
    picture = digit.resize((300, 200), Image.Resampling.BICUBIC)
    return save(picture, path, exif=exif, quality=85)


@pytest.mark.parametrize(
    ("name", "draft_side"),
    [("digit.png", None), ("rotated.jpg", None), ("rotated.jpg", 64)],
)
def test_info_thumbnail_is_that_of_the_decoded_pixels(
    tmp_path: Path, digits: list[Image.Image], name: str, draft_side: int | None
) -> None:
    if name == "digit.png":
        path = save(digits[5], tmp_path / name)
    else:
        path = rotated_jpeg(tmp_path / name, digits[5])

    rgb, info = decode_image(path, draft_side=draft_side)
    stored = info.thumbnail_pixels()

    expected = thumbnail(rgb, THUMBNAIL_SIDE)
    assert info.thumbnail == expected.tobytes()
    assert stored is not None and not stored.flags.writeable
    assert stored.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3)
    assert np.array_equal(stored, expected)


def test_info_without_a_thumbnail_has_no_thumbnail_pixels() -> None:
    info = ImageInfo("ab", 2, 2, "RGB", "PNG", 0)
    assert info.thumbnail is None and info.thumbnail_pixels() is None
    cut = dataclasses.replace(info, thumbnail=bytes(THUMBNAIL_SIDE**2 * 3 - 1))
    assert cut.thumbnail_pixels() is None


def test_image_info_pickles_and_compares_with_its_thumbnail(
    tmp_path: Path, digits: list[Image.Image]
) -> None:
    _, info = decode_image(save(digits[2], tmp_path / "a.png"))
    _, same = decode_image(save(digits[2], tmp_path / "b.png"))
    reloaded = pickle.loads(pickle.dumps(info))

    assert reloaded == info == same and reloaded.thumbnail == info.thumbnail
    assert len({info, reloaded, same}) == 1 and {info: 1}[reloaded] == 1
    other = dataclasses.replace(info, thumbnail=bytes(len(info.thumbnail or b"")))
    assert other != info
    assert "thumbnail" not in repr(info) and len(repr(info)) < 200


def test_thumbnail_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"rgb must be a non-empty \(H, W, 3\)"):
        thumbnail(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"side must be a positive integer; got 0"):
        thumbnail(np.zeros((4, 4, 3), np.uint8), side=0)


# For process pools


def test_try_decode_image_returns_what_decode_image_raises(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (3, 2), RED), tmp_path / "a.png")

    info, rgb = try_decode_image(path)
    error, nothing = try_decode_image(tmp_path / "gone.png")

    assert isinstance(info, ImageInfo)
    assert rgb is not None and rgb.shape == (2, 3, 3)
    assert try_decode_image(path, keep_pixels=False) == (info, None)
    assert isinstance(error, ImageError)
    assert (error.reason, nothing) == ("file not found", None)
    reloaded = pickle.loads(pickle.dumps(error))
    assert (reloaded.path, reloaded.reason) == (error.path, error.reason)
