"""A plain read of n bytes (XOR-folded so nothing is dead code): about the fastest a read-bound kernel can show for
those bytes under a timing method, the reference for the M = 1 targets (bench/gpu_peers.py). read_fn takes the
hand-written CUDA read of bench/read_floor.cu (built here with nvcc on first use) where a CUDA device and nvcc are
present, else this file's Triton read.
Under do_bench (L2 flushed) each eager call carries ~3-4 us besides its kernel, so at 8 MB that overhead is a third of
the time. Kernel times (CUPTI, after do_bench's flush; H100 80GB HBM3, 2026-11-28, bench/probes/read_method.py): the
Triton read 5.7 / 16.9 / 49.5 us for 8.4 / 33.6 / 117 MB, the CUDA read 5.7 / 14.8 / 44.8 (77% and 89% of copy at
33.6 and 117 MB), so the CUDA one is the floor where it can be built."""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache

import torch
import triton
import triton.language as tl

CU = os.path.join(os.path.dirname(os.path.abspath(__file__)), "read_floor.cu")


@triton.jit
def _read_kernel(p, out, n, BLOCK: tl.constexpr):
    # program i reads blocks i, i + grid, ... of n int32 words and writes the XOR of all of them (one word a program;
    # a BLOCK vector a program wrote 4.3 MB: 17.2 -> 16.9 us of kernel at 32 MB, same card and day)
    pid, npr = tl.program_id(0), tl.num_programs(0)
    acc = tl.zeros([BLOCK], dtype=tl.int32)
    for off in range(pid * BLOCK, n, npr * BLOCK):
        acc ^= tl.load(p + off + tl.arange(0, BLOCK), cache_modifier=".cg")
    tl.store(out + pid, tl.xor_sum(acc, 0))


@lru_cache(maxsize=None)
def cuda_lib():
    """bench/read_floor.cu as a shared library (l2p_read), built once per source version into the temp directory; None
    without nvcc."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    src = open(CU, "rb").read()
    so = os.path.join(tempfile.gettempdir(), f"fourbit_read_floor_{hashlib.sha1(src).hexdigest()[:12]}.so")
    if not os.path.exists(so):
        tmp = f"{so}.{os.getpid()}"
        subprocess.run([nvcc, "-std=c++17", "-O3", "-arch=native", "-shared", "-Xcompiler", "-fPIC", "-DL2P_LIB", "-o",
                        tmp, CU], check=True)
        os.replace(tmp, so)
    lib = ctypes.CDLL(so)
    lib.l2p_read.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                             ctypes.c_void_p]
    return lib


def read_fn(src: torch.Tensor, per_sm: int = 2, kind: str = "auto"):
    """fn() reading src (int32, contiguous, numel % 4096 == 0) once with per_sm CTAs / programs an SM (2 was the
    fastest of 2 / 4 / 8 for the Triton read in route_floor.py A, and of 2 / 4 for the CUDA read in read_method.py).
    kind: "cuda" (bench/read_floor.cu), "triton", or "auto" (cuda where src is on a CUDA device and nvcc is found).
    fn.kind says which; fn.out is the folded words (the CUDA read's grid * 256, the Triton read's grid), whose XOR is
    the XOR of every word of src."""
    if src.dtype != torch.int32 or not src.is_contiguous() or src.numel() % 4096:
        raise ValueError("src must be a contiguous int32 tensor with numel % 4096 == 0")
    if kind not in ("auto", "cuda", "triton"):
        raise ValueError(f"kind must be 'auto', 'cuda' or 'triton', not {kind!r}")
    if kind == "auto":
        kind = "cuda" if src.is_cuda and cuda_lib() is not None else "triton"
    grid = per_sm * (torch.cuda.get_device_properties(src.device).multi_processor_count if src.is_cuda else 1)
    if kind == "cuda":
        lib = cuda_lib()
        if lib is None or not src.is_cuda:
            raise RuntimeError("the CUDA read needs src on a CUDA device and nvcc")
        out = torch.empty(grid * 256, dtype=torch.int32, device=src.device)

        def fn():
            err = lib.l2p_read(src.data_ptr(), src.numel() * 4, out.data_ptr(), grid, 0,
                               torch.cuda.current_stream(src.device).cuda_stream)
            if err:
                raise RuntimeError(f"read_floor.cu: CUDA error {err}")
    else:
        out = torch.empty(grid, dtype=torch.int32, device=src.device)

        def fn():
            _read_kernel[(grid,)](src, out, src.numel(), BLOCK=4096, num_warps=8)
    fn.kind, fn.out = kind, out
    return fn
