"""A plain read of n bytes (Triton, grid-stride, XOR-folded so nothing is dead code): about the fastest a read-bound
kernel can show for those bytes under a timing method, the reference for the M = 1 targets (bench/gpu_peers.py).
Under do_bench (L2 flushed) each eager call carries ~3-4 us besides its kernel, so at 8 MB that overhead is a third of
the time. Kernel times (CUPTI, after do_bench's flush; H100 80GB HBM3, 2026-11-28, bench/probes/read_method.py): 5.7 /
16.9 / 49.5 us for 8.4 / 33.6 / 117 MB, against 5.7 / 14.8 / 44.8 for the CUDA read of bench/probes/l2_policy.cu (77%
and 89% of copy at 33.6 and 117 MB): this Triton read is 12-14% slower than a hand-written one on the larger weights."""
import torch
import triton
import triton.language as tl


@triton.jit
def _read_kernel(p, out, n, BLOCK: tl.constexpr):
    # program i reads blocks i, i + grid, ... of n int32 words and writes the XOR of all of them (one word a program;
    # a BLOCK vector a program wrote 4.3 MB: 17.2 -> 16.9 us of kernel at 32 MB, same card and day)
    pid, npr = tl.program_id(0), tl.num_programs(0)
    acc = tl.zeros([BLOCK], dtype=tl.int32)
    for off in range(pid * BLOCK, n, npr * BLOCK):
        acc ^= tl.load(p + off + tl.arange(0, BLOCK), cache_modifier=".cg")
    tl.store(out + pid, tl.xor_sum(acc, 0))


def read_fn(src: torch.Tensor, per_sm: int = 2):
    """fn() reading src (int32, contiguous, numel % 4096 == 0) once with per_sm programs an SM (2 was the fastest of 2 /
    4 / 8 in route_floor.py A: 15.5 / 16.6 / 19.9 us back to back at 33.6 MB)."""
    if src.dtype != torch.int32 or not src.is_contiguous() or src.numel() % 4096:
        raise ValueError("src must be a contiguous int32 tensor with numel % 4096 == 0")
    grid = per_sm * torch.cuda.get_device_properties(src.device).multi_processor_count
    out = torch.empty(grid, dtype=torch.int32, device=src.device)
    return lambda: _read_kernel[(grid,)](src, out, src.numel(), BLOCK=4096, num_warps=8)
