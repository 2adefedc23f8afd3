"""bench/read_floor.py (the plain-read kernels the M = 1 targets are compared with) reads every word once: the XOR it
folds per program equals torch's over the same words (Triton interpreter on CPU, real kernel on a GPU), and on a GPU
the XOR of what the CUDA read (bench/read_floor.cu) and the Triton read fold equals the XOR of every word."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
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


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["cuda", "triton"])
@pytest.mark.parametrize("words", [3 * 4096, 300 * 4096])  # fewer 16-byte pieces than threads; several rounds a thread
def test_read_fn_reads_every_word_once(kind, words):
    if kind == "cuda" and read_floor.cuda_lib() is None:
        pytest.skip("nvcc not found: the CUDA read is not built")
    gen = torch.Generator().manual_seed(words)
    src = torch.randint(-2**31, 2**31 - 1, (words,), dtype=torch.int32, generator=gen)
    fn = read_floor.read_fn(src.cuda(), kind=kind)
    fn.out.copy_(torch.randint(-2**31, 2**31 - 1, fn.out.shape, dtype=torch.int32, generator=gen))  # a word no
    # thread stored would leave its random value in the fold
    fn()
    torch.cuda.synchronize()
    assert fn.kind == kind
    # a piece read twice cancels and a piece missed stays out: either changes the fold of random words
    assert np.bitwise_xor.reduce(fn.out.cpu().numpy()) == np.bitwise_xor.reduce(src.numpy())
