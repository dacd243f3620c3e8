"""The command line keeps freed memory in its process (spinalnet.commands.allocator): large tensors allocated
again and again stop faulting in fresh pages, worker processes inherit it, and a user's own setting wins."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc")

PROBE = """
import json, os, resource, sys
import torch
from spinalnet.commands.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(12):  # until the heap has settled around the block (5 to 8 times, measured)
    torch.empty(16 << 20).fill_(1.0)
before = faults()
for _ in range(20):
    torch.empty(16 << 20).fill_(1.0)  # 64 MB, allocated and freed
print(json.dumps({"kept": kept, "faults": faults() - before,
                  "env": [os.environ.get(v) for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")]}))
"""


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_freed_blocks_are_reused_instead_of_faulted_in_again_here_and_in_workers():
    default, kept = _probe("default"), _probe("keep")
    if not kept["kept"]:
        pytest.skip("this glibc refuses the thresholds")
    assert kept["faults"] * 10 < default["faults"]  # by default every 64 MB tensor faults in afresh
    # a worker process starts with the variables the command set, and glibc applies them at its start
    worker = _probe("default", MALLOC_MMAP_THRESHOLD_=kept["env"][0], MALLOC_TRIM_THRESHOLD_=kept["env"][1])
    assert worker["faults"] * 10 < default["faults"]


@pytest.mark.slow
def test_a_users_own_malloc_setting_wins():
    mine = _probe("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert mine["kept"] is False and mine["env"] == [None, "131072"]
    tunable = _probe("keep", GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072")
    assert tunable["kept"] is False and tunable["env"] == [None, None]
