"""Backbone names: the spec syntax, the Keras aliases, the default model sets, and
timm's name index that names are resolved and listed against.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

import timm

from lazyvision.errors import ModelError

PIXELS = "pixels"
RANDOM_PIXELS = (
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


@functools.cache
def timm_names() -> frozenset[str]:
    """timm's architectures and pretrained ``arch.tag`` names."""
    return frozenset(timm.list_models()) | frozenset(timm.list_models(pretrained=True))


@functools.cache
def squashed_timm_names() -> dict[str, tuple[str, ...]]:
    """timm names keyed by their squashed form, for "ConvNeXt-Tiny" and the like."""
    index: dict[str, list[str]] = {}
    for name in sorted(timm_names()):
        index.setdefault(squash(name), []).append(name)
    return {key: tuple(names) for key, names in index.items()}


def squash(name: str) -> str:
    """Lower case without "_", "-" or spaces."""
    return re.sub(r"[\s_-]", "", name.lower())


def filter_names(names: set[str] | frozenset[str], pattern: str | None) -> list[str]:
    """Sorted names matching a case-insensitive pattern (substring if no wildcard)."""
    if pattern is None:
        return sorted(names)
    pattern = pattern.lower()
    if not any(char in pattern for char in "*?["):
        pattern = f"*{pattern}*"
    return sorted(name for name in names if fnmatch.fnmatchcase(name.lower(), pattern))
