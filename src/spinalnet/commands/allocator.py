"""Keep freed memory in the process instead of handing it back to the kernel after every large tensor.

glibc's malloc serves blocks above 128 KiB with a fresh ``mmap`` and unmaps them when freed, and trims the heap
top above 128 KiB. A backbone's activations are such blocks, allocated and freed at every layer of every batch,
so each new one faults in pages the kernel must zero first. Measured here (2 cores): EfficientNet-Lite0 at 64 px,
batch 256, inference ran at 552 and 523 images/s with 7.9 and 8.7 s of its 18 s of CPU time in the kernel;
with freed memory kept, 1,263 and 1,388 images/s with none (docs/BENCHMARKS.md, section 5). The price: the
process keeps what it has freed, up to its peak use, until it ends.

PyTorch's CPU performance guide suggests another allocator (jemalloc, tcmalloc) for the same reason; this needs
nothing installed. Only the command line does this, in its own process (a library must not change its host's
allocator); a user's own ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or malloc tunable in
``GLIBC_TUNABLES`` wins.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEEP = 1 << 30  # 1 GiB: larger than any single tensor of a batch here
OLDER_GLIBC_MAX = 32 << 20  # older glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit
VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds in this process and, through the environment, in the worker
    processes it starts. False (nothing changed) off glibc, where glibc refuses, or when the user set either
    variable or a malloc tunable."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or any(v in os.environ for v in VARIABLES) \
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    for threshold in (KEEP, OLDER_GLIBC_MAX):
        if mallopt(M_MMAP_THRESHOLD, threshold) == 1:
            break
    else:
        return False
    if mallopt(M_TRIM_THRESHOLD, KEEP) != 1:
        return False
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(threshold)  # read by glibc when a spawned worker starts
    os.environ["MALLOC_TRIM_THRESHOLD_"] = str(KEEP)        # (compare --jobs, DDP)
    return True
