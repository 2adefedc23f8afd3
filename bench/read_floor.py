"""A plain read of n bytes (Triton, grid-stride, XOR-folded so nothing is dead code): the fastest a read-bound kernel
can show for those bytes under a timing method. Under do_bench's L2 flush (it zeroes 256 MB, leaving the L2 full of
dirty lines that the timed kernel's reads write back first) it read 33.6 MB at 54% of copy bandwidth and 117 MB at
74% (H100 80GB HBM3, 2026-11-27, bench/probes/route_floor.py A), so it is the reference for the M = 1 targets
(bench/gpu_peers.py)."""
import torch
import triton
import triton.language as tl


@triton.jit
def _read_kernel(p, out, n, BLOCK: tl.constexpr):
    # program i reads blocks i, i + grid, ... of n int32 words and writes their XOR (one BLOCK vector a program)
    pid, npr = tl.program_id(0), tl.num_programs(0)
    acc = tl.zeros([BLOCK], dtype=tl.int32)
    for off in range(pid * BLOCK, n, npr * BLOCK):
        acc ^= tl.load(p + off + tl.arange(0, BLOCK), cache_modifier=".cg")
    tl.store(out + pid * BLOCK + tl.arange(0, BLOCK), acc)


def read_fn(src: torch.Tensor, per_sm: int = 2):
    """fn() reading src (int32, contiguous, numel % 4096 == 0) once with per_sm programs an SM (2 was the fastest of 2 /
    4 / 8 in route_floor.py A: 15.5 / 16.6 / 19.9 us back to back at 33.6 MB)."""
    if src.dtype != torch.int32 or not src.is_contiguous() or src.numel() % 4096:
        raise ValueError("src must be a contiguous int32 tensor with numel % 4096 == 0")
    grid = per_sm * torch.cuda.get_device_properties(src.device).multi_processor_count
    out = torch.empty(grid * 4096, dtype=torch.int32, device=src.device)
    return lambda: _read_kernel[(grid,)](src, out, src.numel(), BLOCK=4096, num_warps=8)
