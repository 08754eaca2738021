"""timm's pretrained weights from its hub or release URL: the local cache first,
then a download, unless downloads are off or the hub proved unreachable.

Once a download fails for want of a connection, later downloads in the same
process are not tried again: each would wait through the same retries.
"""

from __future__ import annotations

import errno
import functools
import importlib
import logging
import os
import pickle
import socket
import urllib.error
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import huggingface_hub
import timm
import torch
from huggingface_hub.errors import OfflineModeIsEnabled
from torch import nn

# Under the public module's name, which the command line prints with each warning.
logger = logging.getLogger("lazyvision.backbones")


def load_from_hub(
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
    cached = cached_hub_file(hub_id, cfg.hf_hub_filename, url)
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
hub_failure: str | None = None


def _remember_hub_failure(error: BaseException) -> bool:
    """Remembers a failed download, if a connection problem caused it; says if so."""
    global hub_failure
    cause = _connection_cause(error)
    if cause is None:
        return False
    if hub_failure is None:
        hub_failure = f"{type(cause).__name__}: {cause}"
        logger.warning("model hub unreachable; no more downloads: %s", hub_failure)
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
        return "downloads are off (--offline; Settings(allow_download=False) in Python)"
    if hub_failure is not None:
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


def cached_hub_file(
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
