"""Preprocessing: the resize, crop and normalisation a backbone was trained with,
read from its timm data config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from timm.data import resolve_model_data_config
from torch import nn


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


def preprocessing_of(model: nn.Module) -> Preprocessing:
    """The evaluation preprocessing timm resolves from the model's pretrained cfg."""
    return preprocessing_from(resolve_model_data_config(model))


def preprocessing_from(config: Mapping[str, Any]) -> Preprocessing:
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
