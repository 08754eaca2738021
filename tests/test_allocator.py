"""Reusing freed memory: a second large block costs no new page faults."""

from __future__ import annotations

import ctypes
import platform
import resource

import pytest

from lazyvision._allocator import reuse_freed_memory

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the malloc settings exist in glibc only",
)

#: Far above glibc's largest mmap threshold (32 MiB), as activation maps are.
BLOCK_BYTES = 96 * 1024 * 1024
PAGES = BLOCK_BYTES // resource.getpagesize()

_libc = ctypes.CDLL("libc.so.6")
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]


def _faults_for_block() -> int:
    """Minor page faults taken to allocate, fill and free one large block.

    Straight through malloc, as torch's CPU allocator goes: a tensor would also
    leave Python objects and aligned blocks around, which move where the next
    block fits from one run to the next.
    """
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = _libc.malloc(BLOCK_BYTES)
    assert block
    ctypes.memset(block, 7, BLOCK_BYTES)
    _libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_freed_block_is_reused_inside_and_unmapped_outside() -> None:
    assert _faults_for_block() > PAGES // 2  # a fresh mapping every time
    assert _faults_for_block() > PAGES // 2
    with reuse_freed_memory() as active:
        assert active
        _faults_for_block()  # the heap grows once
        assert _faults_for_block() < PAGES // 20
        assert _faults_for_block() < PAGES // 20
    assert _faults_for_block() > PAGES // 2


def test_nested_uses_keep_the_setting_until_the_outer_one_leaves() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            _faults_for_block()
        assert _faults_for_block() < PAGES // 20
    assert _faults_for_block() > PAGES // 2
