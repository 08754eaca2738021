"""Shared fixtures: offline hub, a private cache, the digits sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a model hub; a hub load fails at once instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAZYVISION_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def digits_splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits 0-9, 12 per class, as PNG files with split CSVs (shared, read-only)."""
    from lazyvision.sample import write_digits_sample

    return write_digits_sample(tmp_path_factory.mktemp("digits"), num_per_class=12)
