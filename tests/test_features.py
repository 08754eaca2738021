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
    BatchPreparer,
    PixelStore,
    decode_files,
    extract_features,
    feature_key,
    resolve_precision,
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
    speed = json.loads(
        (tmp_path / "cache" / "features" / key / "speed.json").read_text()
    )
    assert speed["timed_images"] == 3
    assert (
        first.images_per_second
        == again.images_per_second
        == pytest.approx(speed["images_per_second"])
    )


def test_precision_choices() -> None:
    assert resolve_precision("float32", CPU) == torch.float32
    assert resolve_precision("bfloat16", CPU) == torch.bfloat16
    assert resolve_precision("auto", CPU) in (torch.float32, torch.bfloat16)
    with pytest.raises(Exception, match="precision 'half' is not one of"):
        resolve_precision("half", CPU)


def test_remembered_speed_is_the_one_measured_on_the_most_images(
    tmp_path: Path,
) -> None:
    from lazyvision.features import _remember_speed

    assert _remember_speed(tmp_path, 0, 0.0) is None
    assert _remember_speed(tmp_path, 200, 2.0) == 100.0
    # A rerun that computed a few missing images reports the larger measurement.
    assert _remember_speed(tmp_path, 30, 1.0) == 100.0
    assert _remember_speed(tmp_path, 0, 0.0) == 100.0
    assert _remember_speed(tmp_path, 400, 2.0) == 200.0
    assert _remember_speed(tmp_path, 0, 0.0) == 200.0


def test_a_speed_timed_with_its_first_batch_gives_way_to_any_new_one(
    tmp_path: Path,
) -> None:
    from lazyvision.features import _remember_speed

    # As written before the first batch was left out of the timing.
    (tmp_path / "speed.json").write_text(
        json.dumps({"images_per_second": 29.3, "images": 300})
    )
    assert _remember_speed(tmp_path, 0, 0.0) == 29.3
    assert _remember_speed(tmp_path, 40, 0.2) == 200.0
