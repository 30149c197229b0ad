"""The C allocator of the worker processes: undo a trim threshold set on its own.

A training step allocates and frees the same large temporaries (activations,
gradients, FFT buffers: megabytes each at N = 64) every step. glibc serves a
block above its mmap threshold with fresh pages from the kernel, each a page
fault that the kernel zero-fills. glibc raises the mmap threshold by itself as
blocks are freed, but only while no threshold was ever set: a Dask Nanny sets
``MALLOC_TRIM_THRESHOLD_=65536`` in its workers' environment
(``distributed.nanny.pre-spawn-environ``), which as a side effect fixes the
mmap threshold at 128 KiB, so every activation is a fresh mapping. Measured
(3 stacked width-8 ``fno``, N = 64, one thread): 153,000 faults per step and
1.33 s, against 14,000 and 0.80 s with glibc's defaults and about 300 and 0.80 s
with :func:`keep_freed_memory`.

With glibc's defaults the runner leaves the allocator alone. One training
step alone in a fresh process gains 3-19 % from :func:`keep_freed_memory`
(``benchmarks/bench_fno_train.py --fresh``, its ``kept`` column), but the
CPU IsoFLOP study end to end did not (N = 32, widths 1-8 stacked, 2 workers):
chunks of runs trained with it took 562, 586 and 470 s against 527, 523, 462
and 526 s for the interleaved chunks without it (``notebooks/example_isoflop``,
call 18).

Written by hand because no library sets this: it is two ``mallopt(3)`` calls
through :mod:`ctypes`, the runtime form of the environment variables (which a
process reads once, at its start, so a worker cannot set them for itself).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping

import numpy as np

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory", "page_faults", "trim_threshold_alone",
           "undo_trim_threshold_alone"]

# mallopt(3) parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # bytes; glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 256 * 2**20  # bytes of free memory a process keeps at the top of its heap


def _glibc() -> ctypes.CDLL | None:
    """The process's own C library if it is glibc (which has ``mallopt``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)  # the symbols already loaded into this process
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None  # musl (Alpine) and other C libraries
    return libc


def keep_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Let glibc reuse freed blocks below ``mmap_threshold`` instead of mapping fresh pages.

    The cost is memory: the process keeps up to ``trim_threshold`` bytes of
    freed heap for reuse rather than returning them to the system. The runner
    calls it only through :func:`undo_trim_threshold_alone`.

    Parameters
    ----------
    mmap_threshold : int
        Bytes; blocks at least this large are mapped and unmapped one by one
        (``M_MMAP_THRESHOLD``, 1 to 32 MiB).
    trim_threshold : int
        Bytes of free memory at the top of the heap before glibc returns it
        (``M_TRIM_THRESHOLD``), at least ``mmap_threshold``.

    Returns
    -------
    bool
        True when glibc took both settings; False on other C libraries and
        systems, where nothing changes.

    Raises
    ------
    ValueError
        For thresholds outside those ranges.

    References
    ----------
    mallopt(3), Linux man-pages: ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``,
    and how setting either turns off the dynamic mmap threshold.
    """
    if not 1 <= mmap_threshold <= MMAP_THRESHOLD:
        raise ValueError(f"Got mmap_threshold={mmap_threshold!r}, expected 1 to {MMAP_THRESHOLD} bytes")
    if trim_threshold < mmap_threshold:
        raise ValueError(
            f"Got trim_threshold={trim_threshold!r}, expected at least mmap_threshold={mmap_threshold}"
        )
    libc = _glibc()
    if libc is None:
        return False
    mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold)) == 1
    trim_ok = libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold)) == 1
    return mmap_ok and trim_ok


def page_faults(nbytes: int = 8 * 2**20, repeats: int = 20) -> int:
    """Minor page faults of allocating, filling and freeing ``nbytes`` ``repeats`` times.

    A diagnostic of the allocator settings in this process: with memory kept
    for reuse it is about ``nbytes / 4096`` (the first allocation), with every
    block mapped afresh about ``repeats`` times that.

    Parameters
    ----------
    nbytes : int
        Bytes per allocation.
    repeats : int
        Allocations.

    Returns
    -------
    int
        Minor faults of this process over the loop (``getrusage``'s ``ru_minflt``).
    """
    import resource  # Unix only; this module imports everywhere

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        block = np.empty(nbytes, dtype=np.uint8)
        block.fill(1)  # touch every page
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def trim_threshold_alone(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment set glibc's trim threshold but not its mmap threshold.

    Parameters
    ----------
    environ : Mapping, optional
        The environment to read (default :data:`os.environ`): the
        ``MALLOC_*_`` variables and ``GLIBC_TUNABLES`` (``glibc.malloc.*``).

    Returns
    -------
    bool
        True when the mmap threshold was fixed at 128 KiB as a side effect
        (as a Dask Nanny's workers have it); False when neither was set, or
        when the mmap threshold was chosen too (a user's tuning, left alone).
    """
    env = os.environ if environ is None else environ
    tunables = env.get("GLIBC_TUNABLES", "")
    trim = "MALLOC_TRIM_THRESHOLD_" in env or "glibc.malloc.trim_threshold=" in tunables
    mmap = "MALLOC_MMAP_THRESHOLD_" in env or "glibc.malloc.mmap_threshold=" in tunables
    return trim and not mmap


def undo_trim_threshold_alone() -> bool:
    """:func:`keep_freed_memory` where :func:`trim_threshold_alone`; the runner calls it before every experiment.

    Returns
    -------
    bool
        True when the settings changed.
    """
    return trim_threshold_alone() and keep_freed_memory()
