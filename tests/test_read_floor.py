"""bench/read_floor.py (the plain-read kernel the M = 1 targets are compared with) reads every word once: the XOR it
folds per program equals torch's over the same words (Triton interpreter on CPU, real kernel on a GPU)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SPEC = importlib.util.spec_from_file_location("read_floor", Path(__file__).resolve().parents[1] / "bench" /
                                              "read_floor.py")
read_floor = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(read_floor)


@pytest.mark.parametrize("blocks,grid", [(7, 3), (2, 4)])  # uneven share per program; programs with no block
def test_read_kernel_folds_every_word(blocks, grid):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(-2**31, 2**31 - 1, (blocks * 4096,), dtype=torch.int32, generator=gen)
    out = torch.full((grid,), -1, dtype=torch.int32)
    src, out = src.to(dev), out.to(dev)
    read_floor._read_kernel[(grid,)](src, out, src.numel(), BLOCK=4096, num_warps=8)
    want = torch.zeros(grid, dtype=torch.int32)
    for b in range(blocks):  # program b % grid reads block b and folds its 4096 words into one
        for v in src[b * 4096:(b + 1) * 4096].cpu().tolist():
            want[b % grid] ^= v
    assert torch.equal(out.cpu(), want)


def test_read_fn_checks_its_source():
    with pytest.raises(ValueError, match="int32"):
        read_floor.read_fn(torch.zeros(4096, dtype=torch.float32))
    with pytest.raises(ValueError, match="numel % 4096"):
        read_floor.read_fn(torch.zeros(100, dtype=torch.int32))
