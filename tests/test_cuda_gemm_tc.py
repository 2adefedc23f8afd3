"""The Hopper warp-specialized wgmma GEMM (csrc/cuda/gemm_tc.cu) against fourbit.testing's float64 reference.

Error bound: the kernel rounds each dequantized weight ((lut[c] - z) * s in float32) once to x's dtype, multiplies on
tensor cores with float32 accumulation and applies nvfp4's global scale to the float32 sum: exactly the Triton fused
kernel's operand, so the bound is testing.matmul_error_bound with one operand rounding of x's dtype (tensor-core
accumulation doubled there), what the same computation in bf16 / fp16 achieves. Shapes cover every M tile (32, 64,
128, 256 rows of x, and several tiles), split-K and not, K long enough for many passes over the stage ring, N not a
multiple of the weight tile, K of one 128-wide stage, with and without bias. Needs an sm_90 GPU (marker gpu)."""
from __future__ import annotations

import pytest
import torch

from fourbit import testing
from fourbit.formats import PRESETS, make_format
from fourbit.ops import _native_cuda as nc
from fourbit.ops import cuda as cuda_ops
from test_cuda_gemv import quantized  # (dense fp32 reference, CUDA op args) for a preset or config, cached

pytestmark = pytest.mark.gpu

NIB4 = ["int4", "int4_sym", "nf4", "nf4_dq", "bnb_fp4", "nvfp4", "mxfp4"]


@pytest.fixture(autouse=True)
def _need_hopper():
    if not nc.has_cuda():
        pytest.skip("fourbit._C was built without CUDA kernels (no nvcc at build time)")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the wgmma GEMM is built for sm_90a only")


def run_tc(x, args, bias):
    assert nc.tc_supported(x, args[0], args[1], args[2], args[4], args[5])
    out = torch.empty(x.shape[0], args[0].shape[0], dtype=x.dtype, device=x.device)
    return nc.linear_out(x, *args, bias, out, tc=True)


SHAPES = [  # (M, N, K, bias): M tiles 32 .. 256 and several, split-K (small N) and one wave (large N)
    (17, 4096, 1024, False), (32, 130, 512, True), (33, 256, 4096, False), (64, 4097, 2048, True),
    (100, 384, 8192, False), (128, 1000, 256, True), (129, 256, 1024, True), (256, 8192, 512, False),
    (200, 64, 128, True), (300, 192, 512, False),  # M = 300: a second, partial 256-row tile (x rows from 256)
    # many passes over each stage ring (tc_plan on 132 SMs): 4-way split-K, 32 stages a CTA, 8 passes over the 4
    # stages of the 64-row tile; 2-way split, 32 stages a CTA, 8 passes over the 4 stages of the 256-row tile, whose
    # x rows past M = 160 arrive as zeros (TMA) and are never stored
    (40, 4096, 16384, True), (160, 4096, 4096, True),
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", NIB4)
def test_tc_linear_presets(name, dtype):
    gen = torch.Generator().manual_seed(2)
    for M, N, K, with_bias in SHAPES:
        dense, args = quantized(PRESETS[name], N, K)
        x = torch.randn(M, K, generator=gen).to(dtype)
        bias = (torch.randn(N, generator=gen) * 0.1).to(dtype) if with_bias else None
        y = run_tc(x.cuda(), args, None if bias is None else bias.cuda())
        testing.assert_linear_close(y.cpu(), x, dense, bias, f"{name} {dtype} M={M} N={N} K={K} bias={with_bias}",
                                    operand_dtype=dtype)


@pytest.mark.parametrize("group_size", [32, 64, 256, None])
@pytest.mark.parametrize("symmetric", [False, True])
def test_tc_int4_group_sizes(group_size, symmetric):
    """int4 groups of 32 (two scales and zero points a stage), 64, 256 and per-channel (G = K)."""
    fmt = make_format("int4", group_size=group_size, symmetric=symmetric)
    gen = torch.Generator().manual_seed(3)
    for M, N, K in [(48, 200, 768), (160, 128, 4096)]:
        dense, args = quantized(fmt, N, K)
        x = torch.randn(M, K, generator=gen).to(torch.bfloat16)
        y = run_tc(x.cuda(), args, None)
        testing.assert_linear_close(y.cpu(), x, dense, None, f"int4 G={group_size} sym={symmetric} M={M}",
                                    operand_dtype=torch.bfloat16)


def test_tc_route_deterministic_graph(monkeypatch):
    """With the route enabled (TC_MAX_M > 16), the op takes the tc path; results are bitwise the same run to run and
    from a CUDA graph (split-K reduces in a fixed order; the workspace comes from the graph's pool). The small-M
    GEMM's route is off here (it would take M = 64 first)."""
    monkeypatch.setattr(cuda_ops, "TC_MAX_M", 256)
    monkeypatch.setattr(cuda_ops, "SM_MAX_M", cuda_ops.SM_MIN_M)
    monkeypatch.setattr(cuda_ops, "RS_MAX_M", cuda_ops.RS_MIN_M)
    fmt = PRESETS["nvfp4"]
    _, args = quantized(fmt, 512, 4096)
    x = torch.randn(64, 4096, device="cuda").to(torch.bfloat16)
    assert nc._lib().cuda_linear_tc_workspace(64, 512, 4096) > 0  # this shape splits K
    assert cuda_ops.route(x, *args) == "tc"
    op_deterministic_and_graphed(x, args, "tc")


def op_deterministic_and_graphed(x, args, what):
    """The op's result for (x, args): two calls, then a CUDA-graph replay of linear_out (warmed up outside the
    capture), all bitwise equal. Returns it."""
    y1 = torch.ops.fourbit.linear(x, *args, None)
    y2 = torch.ops.fourbit.linear(x, *args, None)
    testing.assert_bit_exact(y1.cpu(), y2.cpu(), f"{what} run to run")
    out = torch.empty_like(y1)
    torch.ops.fourbit.linear_out(x, *args, None, out)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        torch.ops.fourbit.linear_out(x, *args, None, out)
    out.zero_()
    g.replay()
    torch.cuda.synchronize()
    testing.assert_bit_exact(out.cpu(), y1.cpu(), f"{what} graph replay")
    return y1


def test_tc_not_taken(monkeypatch):
    """What the tc path does not take goes elsewhere, with the route enabled: fp32 x, int8 codes, K % 128 != 0."""
    monkeypatch.setattr(cuda_ops, "TC_MAX_M", 256)
    monkeypatch.setattr(cuda_ops, "SM_MAX_M", cuda_ops.SM_MIN_M)  # else the small-M GEMM takes the M = 32 control
    monkeypatch.setattr(cuda_ops, "RS_MAX_M", cuda_ops.RS_MIN_M)  # and the register-A GEMM
    _, args = quantized(PRESETS["int4"], 256, 4096)
    assert cuda_ops.route(torch.randn(32, 4096, device="cuda").bfloat16(), *args) == "tc"  # the control
    x = torch.randn(32, 4096, device="cuda")
    assert not nc.tc_supported(x, args[0], args[1], args[2], args[4], args[5])
    assert cuda_ops.route(x, *args) != "tc"
    _, a8 = quantized(PRESETS["int8"], 256, 4096)
    assert not nc.tc_supported(x.bfloat16(), a8[0], a8[1], a8[2], a8[4], a8[5])
    for K in (96, 192):  # K % 128 != 0
        _, ak = quantized(make_format("int4", group_size=32), 256, K)
        assert not nc.tc_supported(torch.zeros(32, K, device="cuda", dtype=torch.bfloat16), *ak[:3], ak[4], ak[5])


# The default windows (lo, hi) written out per format for a narrow, a mid (N > 8192) and a wide (N > 16384) weight:
# the formats TC_WINDOWS names, not the rule recomputed
DEFAULT_WINDOWS = {
    "nf4": ((16, 256), (16, 256), (32, 256)), "nf4_dq": ((16, 256), (16, 256), (32, 256)),
    "bnb_fp4": ((16, 256), (16, 256), (32, 256)),
    "int4": ((16, 256), (16, 256), (64, 256)), "int4_sym": ((16, 256), (16, 256), (64, 256)),
    "nvfp4": ((16, 256), (128, 256), (128, 256)), "mxfp4": ((64, 256), (128, 256), (128, 256)),
}


@pytest.mark.parametrize("name", NIB4)
def test_tc_default_window(monkeypatch, name):
    """Unset FOURBIT_TC_MAX_M: the op takes tc exactly inside each format's window (DEFAULT_WINDOWS) where neither the
    small-M GEMM (SM_MIN_M < M <= SM_MAX_M) nor the register-A GEMM (RS_MIN_M < M <= RS_MAX_M) takes the weight, which
    route ahead of it, at every edge, and its result there matches the reference (M = 256 runs the 256-row tile)."""
    monkeypatch.setattr(cuda_ops, "TC_MAX_M", None)
    for N, (lo, hi) in zip((320, 8200, 16392), DEFAULT_WINDOWS[name]):
        dense, args = quantized(PRESETS[name], N, 256)
        x32 = torch.zeros(32, 256, device="cuda", dtype=torch.bfloat16)  # stands for any M (M is not checked)
        sm = nc.sm_takes(x32, args[0], args[1], args[2], args[4], args[5])
        rs = nc.rs_takes(x32, args[0], args[1], args[2], args[4], args[5])
        for M in (8, 9, 16, 17, 32, 33, 48, 49, 64, 65, 128, 129, 256, 257, 512, 513):
            x = torch.randn(M, 256, generator=torch.Generator().manual_seed(M)).bfloat16()
            got = cuda_ops.route(x.cuda(), *args)
            in_rs = rs and cuda_ops.RS_MIN_M < M <= cuda_ops.RS_MAX_M
            in_sm = sm and cuda_ops.SM_MIN_M < M <= cuda_ops.SM_MAX_M and not in_rs
            assert (got == "sm") == in_sm, f"{name} N={N} M={M}: {got}"
            assert (got == "rs") == in_rs, f"{name} N={N} M={M}: {got}"
            assert (got == "tc") == (lo < M <= hi and not in_sm and not in_rs), f"{name} N={N} M={M}: {got}"
            if got == "tc" and (M - 1 in (lo, cuda_ops.SM_MAX_M, cuda_ops.RS_MAX_M) or M == hi):  # each edge
                y = torch.ops.fourbit.linear(x.cuda(), *args, None)
                testing.assert_linear_close(y.cpu(), x, dense, None, f"{name} default tc N={N} M={M}",
                                            operand_dtype=torch.bfloat16)
