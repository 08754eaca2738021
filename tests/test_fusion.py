"""Folding BatchNorm into convolutions: same outputs, fewer layers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import torch
from sklearn.datasets import load_sample_image
from torch import nn

from lazyvision._fusion import fold_batchnorm


def _with_trained_statistics(model: nn.Module) -> nn.Module:
    """Random running statistics and affine terms, as training would leave them."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(size, generator=generator))
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.2)
    return model.eval()


def _photo_batch(side: int) -> torch.Tensor:
    rgb = load_sample_image("flower.jpg")[:side, :side]
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()
    return ((pixels / 255.0 - 0.5) / 0.25).unsqueeze(0).repeat(2, 1, 1, 1)


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("architecture", ["test_efficientnet", "test_resnet"])
def test_folding_keeps_the_outputs_and_removes_the_norms(architecture: str) -> None:
    model = _with_trained_statistics(
        timm.create_model(architecture, pretrained=False, num_classes=0)
    )
    original = copy.deepcopy(model)
    before = _norms(model)

    folded = fold_batchnorm(model)

    assert folded == before > 0
    assert _norms(model) == 0
    image = _photo_batch(160)
    with torch.inference_mode():
        expected, actual = original(image), model(image)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_activation_of_a_norm_layer_is_kept() -> None:
    model = _with_trained_statistics(
        timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    )
    activations = sum(isinstance(m, nn.SiLU) for m in model.modules())
    fold_batchnorm(model)
    assert activations > 0
    assert sum(isinstance(m, nn.SiLU) for m in model.modules()) == activations


def test_a_norm_before_its_convolution_is_left_alone() -> None:
    model = _with_trained_statistics(
        nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.ReLU())
    )
    assert fold_batchnorm(model) == 0
    assert isinstance(model[0], nn.BatchNorm2d)


class _SharedOutput(nn.Module):
    """The convolution's output is read by the norm and added back after it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm(y) + y


def test_a_fold_that_changes_the_output_is_undone() -> None:
    model = _with_trained_statistics(_SharedOutput())
    image = _photo_batch(32)
    with torch.inference_mode():
        expected = model(image)
    weight = model.conv.weight.detach().clone()

    assert fold_batchnorm(model) == 0

    assert isinstance(model.norm, nn.BatchNorm2d)
    torch.testing.assert_close(model.conv.weight, weight)
    with torch.inference_mode():
        torch.testing.assert_close(model(image), expected)


def test_a_model_without_norms_is_untouched() -> None:
    model = timm.create_model("test_vit", pretrained=False, num_classes=0).eval()
    assert fold_batchnorm(model) == 0


def test_training_mode_is_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match=r"needs a model in eval\(\) mode"):
        fold_batchnorm(model)
