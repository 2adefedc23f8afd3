"""Every CUDA and Triton kernel once, through the ops, at small shapes: the workload compute-sanitizer checks.
(The gemm_tc block first ran under both tools on 2026-11-27, H100: memcheck 0 errors, racecheck no hazard in fourbit.)

  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --padding 512 python3 scripts/gpu_smoke.py
  compute-sanitizer --tool racecheck python3 scripts/gpu_smoke.py
(GPU.md: only the first recipe, with both settings, caught a planted one-element overrun.)
`plant` runs only pack / unpack and a deliberate one-element overrun from a Triton kernel, to prove the recipe
still catches one.
"""
import os
import sys

os.environ.setdefault("FOURBIT_TRITON_AUTOTUNE", "0")  # one config: the sanitizer makes every launch slow
import torch  # noqa: E402

import fourbit  # noqa: E402
from fourbit.formats import PRESETS  # noqa: E402
from fourbit.ops import _native_cuda as nc  # noqa: E402

dev = "cuda"
PLANT = len(sys.argv) > 1 and sys.argv[1] == "plant"  # the control alone: the planted overrun, nothing else


def native_cases(shapes, ms, **kernel):
    """Every nib4 kind through one native kernel (kernel: tc=True, rs=True, or the default route of the native call)
    for each weight shape (N, K) and M, with a bias."""
    for name in ("int4", "nf4", "nvfp4", "mxfp4"):
        for N, K in shapes:
            args = fourbit.quantize(torch.randn(N, K, device=dev), name).op_args()
            for M in ms:
                x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
                nc.linear_out(x, *args, torch.randn(N, device=dev, dtype=torch.bfloat16),
                              torch.empty(M, N, device=dev, dtype=torch.bfloat16), **kernel)


def workload():
    from fourbit.kernels.dequantize import dequantize as triton_dequantize

    for name, fmt in PRESETS.items():
        w = torch.randn(37, 256, device=dev)
        qw = fourbit.quantize(w, fmt)
        qw.dequantize(torch.bfloat16)  # 4-bit, power-of-two groups: csrc/cuda/dequant.cu, its last block partial
        if fmt.bits == 4:  # the group-table dequantize (the codebook formats' default) forced on, fp16 too
            a = qw.op_args()
            triton_dequantize(*a[:5], a[5], torch.float16, table=True)
        for M in (1, 3, 17):  # CUDA GEMV (M <= 8), the small-M GEMM or Triton GEMM
            for dt in (torch.bfloat16, torch.float32):
                x = torch.randn(M, 256, device=dev, dtype=dt)
                fourbit.linear(x, qw, torch.randn(37, device=dev, dtype=dt))
    # the CUDA quantize (csrc/cuda/quant.cu) of bf16 / fp16 weights in every format it takes, a partial last block
    # each, and a 512-element nf4 block (32 lanes a group)
    for dt in (torch.bfloat16, torch.float16):
        for name in ("int4", "int4_sym", "nf4", "nvfp4", "mxfp4", "mxfp4_rceil"):
            fourbit.quantize(torch.randn(37, 256, device=dev, dtype=dt), name)
        fourbit.quantize(torch.randn(5, 1024, device=dev, dtype=dt), PRESETS["nf4"].replace(block_size=512))
    # nvfp4 of bf16 / fp16 weights (the 16-bit word kernels: a partial last program, its evict_last part inside the
    # tensor) and of a view 2 bytes past a 4-byte boundary (the generic kernels)
    from fourbit.kernels.quantize import quantize as triton_quantize
    for dt in (torch.bfloat16, torch.float16):
        w = torch.randn(37, 272, device=dev, dtype=dt)
        triton_quantize(w, "nvfp4", "", 16)
        triton_quantize(w, "nvfp4", "", 16, amax_cfg=(64, 3, 1), keep=4000)
        v = torch.empty(w.numel() + 1, device=dev, dtype=dt)[1:].view(w.shape)
        v.copy_(w)
        triton_quantize(v, "nvfp4", "", 16)
    # split-K paths (GEMV with K split across blocks, the fused Triton GEMM's workspace + reduce) and the large-M
    # dequantize + cuBLAS path
    for name in ("int4", "nf4", "nvfp4", "mxfp4"):
        qw = fourbit.quantize(torch.randn(48, 4096, device=dev), name)
        for M, split in ((1, None), (12, None), (64, 3), (600, None)):
            x = torch.randn(M, 4096, device=dev, dtype=torch.bfloat16)
            if split:
                from fourbit import kernels as _k
                _k.linear(x, *qw.op_args(), None, split_k=split)
            else:
                fourbit.linear(x, qw)
    # eager replays: a cached weight's second call re-issues the first call's recorded launches (fourbit.ops.eager)
    for name in ("int4", "nvfp4"):
        qw = fourbit.quantize(torch.randn(64, 512, device=dev), name)
        for M in (1, 64, 600):  # GEMV, fused GEMM, dequantize + cuBLAS
            x = torch.randn(M, 512, device=dev, dtype=torch.bfloat16)
            for _ in range(2):
                fourbit.linear(x, qw)
    # the opt-in W4A8 path (activation quantize, csrc/cuda/act_e4m3.cu, + FP8 GEMM): int4 and mxfp4 up to M = 1024 on
    # Hopper through the CUDA GEMM (csrc/cuda/gemm_w4a8.cu: 64-, 128- and 256-row x tiles (M = 3 / 300 at K = 4096 /
    # 300 and 515 at K = 512), a partial 128-row weight tile, split-K at K = 4096, symmetric int4, mxfp4's table
    # decode), elsewhere the fused kernel (M < 512), cuBLAS block-scaled GEMM with fused tail rows (M = 1030), each
    # called twice (the second call is the eager replay)
    for name, K in (("int4", 512), ("mxfp4", 512), ("int4", 4096), ("int4_sym", 4096), ("mxfp4", 4096)):
        qw = fourbit.quantize(torch.randn(48, K, device=dev), name)
        for M in (3, 300, 515, 1030):
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            for _ in range(2):
                fourbit.linear(x, qw, act="fp8_e4m3")
    # the prepared native W4A8 replay (_native_cuda.w4a8_prepared) where the GEMM splits K 16 ways through the
    # workspace, which shares its buffer with x8 and the row scales
    qw = fourbit.quantize(torch.randn(128, 16384, device=dev), "int4")
    x = torch.randn(7, 16384, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        fourbit.linear(x, qw, act="fp8_e4m3")
    hopper = nc.has_cuda() and torch.cuda.get_device_capability() == (9, 0)
    # the Hopper wgmma GEMM (csrc/cuda/gemm_tc.cu) on every M tile (32 / 64 / 128 / 256 x rows), split-K (N = 48,
    # K = 4096) and not (K = 256), N not a multiple of the weight tile; sm_90 only
    if hopper:
        native_cases(((48, 4096), (200, 256)), (20, 64, 100, 129), tc=True)
    # the register-A wgmma GEMM (csrc/cuda/gemm_rs.cu): its x tiles (64 / 128 / 256 rows) and several, partial x
    # tiles, split-K (K = 4096: 8 splits reduced in a cluster) and not (K = 64: one chunk), N past the 128-row weight
    # tile; sm_90 only
    if hopper:
        native_cases(((200, 4096), (130, 64)), (17, 64, 100, 300), rs=True)
    # the small-M mma.sync GEMM (csrc/cuda/gemm_sm.cu): its three x-block counts (M <= 16, 32, 64), split-K (K = 4096)
    # and not (K = 256, a partial 256-row block), a partial 8-row x block; M = 72: the native call's GEMV in 16-row
    # slabs (its M16 kernel, which the op's routing no longer reaches)
    if nc.has_cuda():
        native_cases(((300, 4096), (200, 256)), (12, 17, 40, 64, 72))
        # plan_sm's block sizes on 132 SMs: the shapes above take 8 warps (2 blocks an SM); 14 warps at 65 blocks x 2
        # splits with a partial block, 16 warps at 16 x 8
        native_cases(((14373, 1024),), (12, 24, 40))
        native_cases(((4096, 4096),), (40,))
    # the tl.dot_scaled kernels (weight-only bf16 and W4A4) and the CUDA W4A4 kernel with its activation quantizer
    from fourbit import kernels
    from fourbit.layout import to_blocked_scales

    for name in ("nvfp4", "mxfp4"):
        qw = fourbit.quantize(torch.randn(40, 256, device=dev), name)
        q, s, z, g, lut, G = qw.op_args()
        x = torch.randn(17, 256, device=dev, dtype=torch.bfloat16)
        for act in ("bf16", "fp4"):
            kernels.linear_scaled(x, q, s, g, name, None, act=act)
        if nc.has_cuda():
            nc.w4a4_linear(x, name, q, to_blocked_scales(s), g if g.numel() else None)


if not PLANT:
    workload()
codes = torch.randint(0, 16, (5, 64), dtype=torch.uint8, device=dev)
torch.ops.fourbit.unpack_nibbles(torch.ops.fourbit.pack_nibbles(codes))
if PLANT:
    from fourbit.kernels.pack import _pack_kernel
    short = torch.empty(5 * 32 - 1, dtype=torch.uint8, device=dev)  # one byte short of the 160 packed bytes
    _pack_kernel[(1,)](codes, short, 5 * 32, BLOCK=256)
torch.cuda.synchronize()
print("gpu smoke done", sys.argv[1:])
