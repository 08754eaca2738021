"""Reusing freed memory: a second large block costs no new page faults."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from lazyvision._allocator import reuse_freed_memory

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the malloc settings exist in glibc only",
)

#: Far above glibc's largest mmap threshold (32 MiB), as activation maps are.
BLOCK_BYTES = 96 * 1024 * 1024
PAGES = BLOCK_BYTES // resource.getpagesize()


def _faults_for_block() -> int:
    """Minor page faults taken to allocate, fill and free one large block."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    # torch, as a forward pass does: numpy asks for huge pages on its own.
    block = torch.full((BLOCK_BYTES,), 7, dtype=torch.uint8)
    assert block[-1] == 7
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _fewest_faults(repeats: int = 3) -> int:
    # The heap grows on the first block or two, depending on what else lies in it.
    return min(_faults_for_block() for _ in range(repeats))


def test_a_freed_block_is_reused_inside_and_unmapped_outside() -> None:
    assert _fewest_faults() > PAGES // 2  # a fresh mapping every time
    with reuse_freed_memory() as active:
        assert active
        assert _fewest_faults() < PAGES // 20
    assert _fewest_faults() > PAGES // 2


def test_nested_uses_keep_the_setting_until_the_outer_one_leaves() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            _faults_for_block()
        assert _fewest_faults() < PAGES // 20
    assert _fewest_faults() > PAGES // 2
