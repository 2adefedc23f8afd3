"""The Hopper register-A wgmma GEMM (csrc/cuda/gemm_rs.cu) against fourbit.testing's float64 reference.

Error bound: the kernel decodes each weight exactly as the tensor-core GEMV does (the byte-pair table, then (pair - z)
* s in x's dtype) and applies nvfp4's global scale to the float32 sum, so the GEMV's derived bound applies
(tests/test_cuda_gemv.py's docstring: matmul_error_bound plus the decode's roundings, tensor-core accumulation
doubled). Shapes cover both x tiles (64 and 128 rows) and several of them, partial tiles, split-K and not, many
passes over the stage ring, N not a multiple of the 128-row weight tile, K of one 64-wide chunk, with and without
bias. Needs an sm_90 GPU (marker gpu)."""
from __future__ import annotations

import pytest
import torch

from fourbit.formats import make_format
from fourbit.ops import _native_cuda as nc
from fourbit.ops import cuda as cuda_ops
from test_cuda_gemm_tc import NIB4, _need_hopper, op_deterministic_and_graphed  # noqa: F401 (_need_hopper: autouse)
from test_cuda_gemv import check_linear, quantized

pytestmark = pytest.mark.gpu


def run_rs(x, args, bias):
    assert nc.rs_takes(x, args[0], args[1], args[2], args[4], args[5])
    out = torch.empty(x.shape[0], args[0].shape[0], dtype=x.dtype, device=x.device)
    return nc.linear_out(x, *args, bias, out, rs=True)


SHAPES = [  # (M, N, K, bias): x tiles of 64 (M <= 64), 128 and 256 rows, partial and several; split-K and one wave
    (17, 4096, 1024, False), (64, 130, 512, True), (65, 256, 4096, False), (100, 4097, 2048, True),
    (128, 1000, 256, True), (129, 384, 8192, False), (256, 8192, 512, False), (300, 192, 512, True),
    (200, 64, 64, True),  # K of one chunk
    # many passes over the stage ring (rs_plan on 132 SMs): 4096 / 64 = 64 chunks over 6 or 8 stages, with and
    # without splits
    (40, 4096, 16384, True), (160, 4096, 4096, True), (1024, 512, 1024, False),
    (2048, 384, 512, True), (1999, 256, 1024, False),  # the route's largest M (RS_MAX_M), 8 x tiles, a partial one
    # split-K reduced in clusters (test_rs_split_k_in_clusters): 4 splits of 8 tiles, 8 of 2 (partial 256-row tile)
    (200, 1024, 2048, True), (130, 256, 4096, False),
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", NIB4)
def test_rs_linear_presets(name, dtype):
    gen = torch.Generator().manual_seed(4)
    for M, N, K, with_bias in SHAPES:
        dense, args = quantized(name, N, K)
        x = torch.randn(M, K, generator=gen).to(dtype)
        bias = (torch.randn(N, generator=gen) * 0.1).to(dtype) if with_bias else None
        y = run_rs(x.cuda(), args, None if bias is None else bias.cuda())
        check_linear(y.cpu(), x, dense, bias, "mma", dtype, args[3],
                     f"{name} {dtype} M={M} N={N} K={K} bias={with_bias}")


@pytest.mark.parametrize("group_size", [32, 64, 256, None])
@pytest.mark.parametrize("symmetric", [False, True])
def test_rs_int4_group_sizes(group_size, symmetric):
    """int4 groups of 32 (two scales and zero points a chunk), 64 (one a chunk), 256 (one every 4 chunks) and
    per-channel (G = K, not a power of two at K = 4160)."""
    fmt = make_format("int4", group_size=group_size, symmetric=symmetric)
    gen = torch.Generator().manual_seed(5)
    for M, N, K in [(80, 200, 768), (160, 128, 4096), (96, 300, 4160)]:
        if group_size and K % group_size:
            continue
        dense, args = quantized(fmt, N, K)
        x = torch.randn(M, K, generator=gen).to(torch.bfloat16)
        y = run_rs(x.cuda(), args, None)
        check_linear(y.cpu(), x, dense, None, "mma", torch.bfloat16, args[3],
                     f"int4 G={group_size} sym={symmetric} M={M} K={K}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_rs_int4_bit_decode_matches_table(dtype):
    """int4 with zero points decodes by bits at x tiles of 64 and 128 rows (codes = 1: (M + c) - (M + z), no table);
    forced through the byte-pair table (codes = 0) the output must be bitwise the same, since both decodes are exact
    before the scale's one rounding and the summation order does not change. Group sizes 64 and 128, a partial weight
    tile, split-K through the workspace and through a cluster."""
    gen = torch.Generator().manual_seed(6)
    for G, (M, N, K) in [(128, (40, 4096, 1024)), (64, (100, 4097, 2048)), (128, (128, 1000, 256)),
                         (128, (64, 256, 8192))]:
        _, args = quantized(make_format("int4", group_size=G), N, K)
        x = torch.randn(M, K, generator=gen).to(dtype).cuda()
        assert nc.tc_codes(args[4]) == 1
        outs = [nc.linear_out(x, *args, None, torch.empty(M, N, dtype=dtype, device="cuda"), rs=True, codes=c)
                for c in (1, 0)]
        assert torch.equal(outs[0], outs[1]), (G, M, N, K, dtype)


def test_rs_takes_rules():
    """What the kernel declines (and linear_rs refuses with an error): fp32 x, x 8 bytes past a 16-byte boundary, K
    not a multiple of 64."""
    _, args = quantized("nf4", 256, 512)
    x = torch.randn(100, 512, device="cuda", dtype=torch.bfloat16)
    assert nc.rs_takes(x, args[0], args[1], args[2], args[4], args[5])
    assert not nc.rs_takes(x.float(), args[0], args[1], args[2], args[4], args[5])
    xm = torch.empty(100 * 512 + 4, device="cuda", dtype=torch.bfloat16)[4:].view(100, 512)
    assert not nc.rs_takes(xm, args[0], args[1], args[2], args[4], args[5])  # 8 bytes past a 16-byte boundary
    _, a32 = quantized(make_format("int4", group_size=32), 64, 480)  # K = 480: not a multiple of 64
    x48 = torch.randn(100, 480, device="cuda", dtype=torch.bfloat16)
    assert not nc.rs_takes(x48, a32[0], a32[1], a32[2], a32[4], a32[5])
    with pytest.raises(Exception, match="linear_rs"):
        nc.linear_out(x48, *a32, None, torch.empty(100, 64, device="cuda", dtype=torch.bfloat16), rs=True)


def test_rs_split_k_in_clusters():
    """A tile's splits reduce inside one thread-block cluster (no workspace) where S <= 8 and all the clusters are
    resident at once, else through the float32 workspace (rs_plan; 132 SMs)."""
    lib = nc._lib()
    assert lib.cuda_linear_rs_workspace(200, 1024, 2048) == 0  # 8 tiles of 256 x rows x 4 splits
    assert lib.cuda_linear_rs_workspace(130, 256, 4096) == 0  # 2 tiles x 8 splits
    # 3 tiles of 256 rows would take 16 splits, more than a cluster: 6 tiles of 128 rows x 16 through the workspace
    assert lib.cuda_linear_rs_workspace(129, 384, 8192) == 16 * 129 * 384


def test_rs_route_deterministic_graph():
    """Inside the route's window the op takes rs; results are bitwise the same run to run (split-K reduces in a fixed
    order) and from a CUDA graph."""
    dense, args = quantized("int4", 512, 4096)
    M = cuda_ops.RS_MIN_M + 36
    x = torch.randn(M, 4096, device="cuda", dtype=torch.bfloat16)
    assert cuda_ops.route(x, *args) == "rs"
    y1 = op_deterministic_and_graphed(x, args, "rs")
    check_linear(y1.cpu(), x.cpu(), dense, None, "mma", torch.bfloat16, args[3], "rs route")
