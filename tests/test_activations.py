"""ReLU and ReLU6 as integer clamps of 16-bit floats: the same numbers, faster."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

from lazyvision._activations import BitClampActivation, swap_activations

EDGES = [-float("inf"), -7.0, -6.0, -1e-3, -0.0, 0.0, 1e-3, 5.96875, 6.0, 6.05]
EDGES += [7.0, 1e4, float("inf")]


def _values(dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    spread = torch.randn(4, 8, 5, 5, generator=generator) * 5
    spread.view(-1)[: len(EDGES)] = torch.tensor(EDGES)
    return spread.to(dtype).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("original", [nn.ReLU(), nn.ReLU6()], ids=["relu", "relu6"])
def test_same_values_as_pytorch(dtype: torch.dtype, original: nn.Module) -> None:
    x = _values(dtype)
    untouched = x.clone()
    got = BitClampActivation(original)(x)
    assert torch.equal(got, original(untouched))
    assert torch.equal(x, untouched)  # not in place, as the original
    assert got.dtype == dtype
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_in_place_module_clamps_its_input() -> None:
    x = _values(torch.bfloat16)
    expected = nn.functional.relu6(x)
    got = BitClampActivation(nn.ReLU6(inplace=True))(x)
    assert got is x
    assert torch.equal(x, expected)


def test_float32_goes_to_the_original() -> None:
    x = _values(torch.float32)
    assert torch.equal(BitClampActivation(nn.ReLU6())(x), nn.functional.relu6(x))


def test_swapped_model_gives_identical_bfloat16_outputs() -> None:
    model = timm.create_model("test_resnet", pretrained=False, num_classes=0).eval()
    swapped = copy.deepcopy(model)
    assert swap_activations(swapped) == sum(type(m) is nn.ReLU for m in model.modules())
    assert swap_activations(swapped) == 0  # already done
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(swapped(image), model(image))


def test_subclasses_are_left_alone() -> None:
    class Leaky(nn.ReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.leaky_relu(x)

    model = nn.Sequential(nn.Conv2d(3, 4, 1), Leaky(), nn.ReLU6())
    assert swap_activations(model) == 1
    assert isinstance(model[1], Leaky) and isinstance(model[2], BitClampActivation)
