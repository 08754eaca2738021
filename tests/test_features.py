"""Decode once, embed once: the pixel store, batch preparation and the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image
from timm.data import create_transform, resolve_data_config

from lazyvision.backbones import create_backbone, resolve_preprocessing
from lazyvision.cache import FeatureStore
from lazyvision.features import (
    EARLIER_RUN,
    THIS_RUN,
    BatchPreparer,
    PixelStore,
    Speed,
    _Run,
    decode_files,
    extract_features,
    feature_key,
    remembered_speed,
    resolve_precision,
    settle_speed,
    speed_conditions,
    store_sides,
)
from lazyvision.images import center_square, decode_image

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "china.jpg"
    Image.fromarray(load_sample_image("china.jpg")).save(path, quality=95)
    return path


def test_store_keeps_one_square_per_side_from_one_decode(
    photo: Path, tmp_path: Path
) -> None:
    sides = store_sides(
        [resolve_preprocessing("inception_v3"), resolve_preprocessing("resnet50")]
    )
    assert sides == [235, 341]  # timm: 224 / 0.95 and 299 / 0.875, floored
    store = PixelStore(1, sides, tmp_path)
    (result,) = decode_files([photo], store=store)
    assert result.info is not None
    rgb, _ = decode_image(photo, draft_side=max(sides))
    for side in sides:
        stored = store.batch([result.info.digest], side)[0]
        np.testing.assert_array_equal(stored, center_square(rgb, side))
    store.close()
    assert not any(tmp_path.iterdir())


def test_prepared_batch_matches_timms_own_transform(
    photo: Path, tmp_path: Path
) -> None:
    backbone = create_backbone("tf_efficientnet_lite0")
    preprocessing = backbone.preprocessing
    side = BatchPreparer.stored_side(preprocessing)
    store = PixelStore(1, [side], tmp_path)
    (result,) = decode_files([photo], store=store)
    assert result.info is not None
    ours = BatchPreparer(preprocessing, side, CPU)(
        store.batch([result.info.digest], side)
    )
    config = resolve_data_config({}, model=backbone.model)
    theirs = create_transform(**config)(Image.open(photo).convert("RGB"))[None]
    assert ours.shape == theirs.shape
    assert ours.is_contiguous(memory_format=torch.channels_last)
    # The crop lands within a pixel of timm's; the embeddings agree.
    with torch.inference_mode():
        a, b = backbone.model(ours), backbone.model(theirs)
    assert torch.nn.functional.cosine_similarity(a, b).item() > 0.98


def test_prepared_batch_is_the_normalised_centre_crop() -> None:
    preprocessing = resolve_preprocessing("mobilenetv2_100")
    side = BatchPreparer.stored_side(preprocessing)
    squares = np.random.default_rng(1).integers(
        0, 256, (4, side, side, 3), dtype=np.uint8
    )
    batch = BatchPreparer(preprocessing, side, CPU)(squares)

    height, width = preprocessing.input_size
    top, left = (side - height) // 2, (side - width) // 2
    crop = squares[:, top : top + height, left : left + width] / 255.0
    expected = (crop - np.array(preprocessing.mean)) / np.array(preprocessing.std)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(
        batch.permute(0, 2, 3, 1).numpy(), expected, rtol=0, atol=1e-5
    )


def test_squash_and_resize_paths_give_the_input_size(tmp_path: Path) -> None:
    preprocessing = resolve_preprocessing("test_vit")
    squares = np.random.default_rng(0).integers(
        0, 256, (3, 300, 300, 3), dtype=np.uint8
    )
    batch = BatchPreparer(preprocessing, 300, CPU)(squares)
    assert tuple(batch.shape) == (3, 3, *preprocessing.input_size)
    assert torch.isfinite(batch).all()


def test_extraction_is_cached_and_reused(tmp_path: Path, photo: Path) -> None:
    images = []
    for index in range(5):
        path = tmp_path / f"img{index}.png"
        Image.fromarray(np.full((40, 60, 3), 40 * index, dtype=np.uint8)).save(path)
        images.append(path)
    backbone = create_backbone("test_resnet@random")
    side = BatchPreparer.stored_side(backbone.preprocessing)
    store = PixelStore(5, [side], tmp_path / "tmp")
    digests = [r.info.digest for r in decode_files(images, store=store) if r.info]
    first = extract_features(
        backbone, digests, cache_dir=tmp_path / "cache", pixels=store, batch_size=2
    )
    again = extract_features(
        backbone, digests[::-1], cache_dir=tmp_path / "cache", pixels=store
    )
    assert first.num_computed == 5 and again.num_computed == 0
    np.testing.assert_array_equal(first.embeddings[::-1], again.embeddings)
    assert first.embeddings.shape == (5, backbone.embedding_size)
    key = feature_key(backbone, resolve_precision("auto", CPU))
    assert set(FeatureStore(tmp_path / "cache" / "features" / key).load()) == set(
        digests
    )
    # Its speed is timed after the first batch of 2: over the other 3 images.
    assert first.speed is not None
    assert first.speed.num_timed == 3 and first.speed.source == THIS_RUN
    # A rerun that embeds nothing reports it, at the same batch size only.
    assert again.speed is None
    third = extract_features(
        backbone, digests, cache_dir=tmp_path / "cache", pixels=store, batch_size=2
    )
    assert third.speed == first.speed._replace(source=EARLIER_RUN)


def _shades(folder: Path, count: int) -> list[Path]:
    """``count`` small images in ``folder``, each of its own grey."""
    folder.mkdir()
    paths = []
    for index in range(count):
        path = folder / f"img{index}.png"
        Image.fromarray(np.full((24, 24, 3), index * 3, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_a_run_that_timed_enough_images_reports_its_own_speed(
    tmp_path: Path,
) -> None:
    # The images of two data sets; the first embedded one at a time.
    images = _shades(tmp_path / "images", 76)
    backbone = create_backbone("pixels")
    side = BatchPreparer.stored_side(backbone.preprocessing)
    store = PixelStore(len(images), [side], tmp_path / "tmp")
    digests = [r.info.digest for r in decode_files(images, store=store) if r.info]
    assert len(set(digests)) == 76
    cache = tmp_path / "cache"
    one_at_a_time = extract_features(
        backbone, digests[:40], cache_dir=cache, pixels=store, batch_size=1
    )
    batched = extract_features(
        backbone, digests[40:], cache_dir=cache, pixels=store, batch_size=2
    )

    assert one_at_a_time.speed is not None and batched.speed is not None
    assert one_at_a_time.speed.num_timed == 39
    # 34 images after the first batch: more than the 32 and two batches needed.
    assert batched.speed.num_timed == 34 and batched.speed.source == THIS_RUN
    assert batched.images_per_second != one_at_a_time.images_per_second


CONDITIONS = "batch 64, cpu, float32, 2 threads"


def _run(num_timed: int, seconds: float, batch_size: int = 64) -> _Run:
    return _Run(batch_size, num_timed, seconds)


def test_a_remembered_speed_is_reported_only_when_too_few_images_were_timed(
    tmp_path: Path,
) -> None:
    earlier = settle_speed(tmp_path, CONDITIONS, _run(400, 4.0))
    assert earlier == Speed(100.0, 400, THIS_RUN)
    # Enough images (two batches of 64 after the first): this run's own figure,
    # though the earlier one rests on more.
    assert settle_speed(tmp_path, CONDITIONS, _run(128, 0.5)) == (
        Speed(256.0, 128, THIS_RUN)
    )
    # Too few: the latest figure timed under the same conditions.
    assert settle_speed(tmp_path, CONDITIONS, _run(100, 0.2)) == (
        Speed(256.0, 128, EARLIER_RUN)
    )
    assert settle_speed(tmp_path, CONDITIONS, _run(0, 0.0)) == (
        Speed(256.0, 128, EARLIER_RUN)
    )
    # At batch size 1, 32 images are enough.
    assert settle_speed(tmp_path, CONDITIONS, _run(32, 0.5, batch_size=1)) == (
        Speed(64.0, 32, THIS_RUN)
    )


def test_a_speed_timed_under_other_conditions_is_never_reported(
    tmp_path: Path,
) -> None:
    settle_speed(tmp_path, "batch 1, cpu, float32, 2 threads", _run(400, 0.5, 1))
    for other in (
        "batch 64, cpu, float32, 2 threads",
        "batch 1, cpu, bfloat16, 2 threads",
        "batch 1, cpu, float32, 8 threads",
        "batch 1, cuda NVIDIA H200, float32, 2 threads",
    ):
        assert settle_speed(tmp_path, other, _run(0, 0.0)) is None
        assert remembered_speed(tmp_path, other) is None
    # Too few images and nothing better known: this run's figure, remembered.
    assert settle_speed(tmp_path, CONDITIONS, _run(10, 0.5)) == (
        Speed(20.0, 10, THIS_RUN)
    )
    assert remembered_speed(tmp_path, CONDITIONS) == Speed(20.0, 10, EARLIER_RUN)
    # Until a run times more.
    assert settle_speed(tmp_path, CONDITIONS, _run(20, 0.5)) == (
        Speed(40.0, 20, THIS_RUN)
    )


def test_speed_conditions_name_batch_device_precision_and_threads() -> None:
    conditions = speed_conditions(batch_size=8, device=CPU, precision="bfloat16")
    assert conditions == f"batch 8, cpu, bfloat16, {torch.get_num_threads()} threads"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # As written before speeds were kept per conditions.
        ("speed.json", json.dumps({"images_per_second": 566.0, "timed_images": 300})),
        ("speeds.json", json.dumps({"images_per_second": 566.0})),
        ("speeds.json", json.dumps({"measured": {CONDITIONS: {"num_timed": "x"}}})),
        ("speeds.json", json.dumps({"measured": [1, 2]})),
        ("speeds.json", "{not json"),
    ],
)
def test_old_or_damaged_speed_files_are_ignored(
    tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / name).write_text(text)
    assert settle_speed(tmp_path, CONDITIONS, _run(0, 0.0)) is None
    assert settle_speed(tmp_path, CONDITIONS, _run(10, 1.0)) == (
        Speed(10.0, 10, THIS_RUN)
    )
    assert remembered_speed(tmp_path, CONDITIONS) == Speed(10.0, 10, EARLIER_RUN)


def test_precision_choices() -> None:
    assert resolve_precision("float32", CPU) == torch.float32
    assert resolve_precision("bfloat16", CPU) == torch.bfloat16
    assert resolve_precision("auto", CPU) in (torch.float32, torch.bfloat16)
    with pytest.raises(Exception, match="precision 'half' is not one of"):
        resolve_precision("half", CPU)
