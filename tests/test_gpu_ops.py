"""The registered ops on a CUDA device, through the dispatch in fourbit/ops/cuda.py: every path a shape can take
(CUDA GEMV for M <= 16, Triton GEMM above), bit-exact quantize/dequantize/pack vs the FP32 references, linear within
the bound of the same computation with bf16/fp16 operands, torch.compile, CUDA graphs, out= buffers."""
from __future__ import annotations

import pytest
import torch

import fourbit
from fourbit import testing
from fourbit.formats import PRESETS

pytestmark = pytest.mark.gpu
OPS = torch.ops.fourbit
DEV = "cuda"


def _w(N, K, seed):
    return torch.randn(N, K, generator=torch.Generator().manual_seed(seed)) * 0.05


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_quantize_dequantize_pack_bit_exact_on_gpu(name):
    fmt = PRESETS[name]
    for N, K, seed in ((1, 256, 0), (37, 512, 1), (130, 1024, 2)):
        w = _w(N, K, seed)
        w[0, :16] = 0  # an all-zero block
        w[-1, 5] = 40.0  # one huge outlier
        qw, ref = fourbit.quantize(w.to(DEV), fmt), testing.reference_quantize(w, fmt)
        for key, t in zip(("qdata", "scales", "zeros", "global_scale"), ref.op_args()[:4]):
            testing.assert_bit_exact(dict(zip(("qdata", "scales", "zeros", "global_scale"),
                                              qw.op_args()[:4]))[key].cpu(), t, f"{name} {key}")
        deq = fmt.dequantize_ref(fmt.quantize_ref(w))
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            testing.assert_bit_exact(qw.dequantize(dtype).cpu(), deq.to(dtype), f"{name} dequantize {dtype}")
    codes = torch.randint(0, 16, (7, 96), dtype=torch.uint8)
    testing.assert_bit_exact(OPS.pack_nibbles(codes.to(DEV)).cpu(), fourbit.layout.pack_nibbles_ref(codes), "pack")


@pytest.mark.parametrize("M", [1, 2, 3, 16, 17, 255, 4096])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("name", ["int4", "int4_sym", "nf4", "nf4_dq", "bnb_fp4", "nvfp4", "mxfp4", "int8_asym"])
def test_linear_every_path(name, dtype, M):
    fmt = PRESETS[name]
    gen = torch.Generator().manual_seed(M)
    Ks = (fmt.group(256), 1024) if M <= 255 else (512,)
    for N, K in [(N, K) for N in (37, 129) for K in Ks]:
        w = _w(N, K, N + K)
        qw = fourbit.quantize(w.to(DEV), fmt)
        x = torch.randn(M, K, generator=gen).to(dtype)
        bias = torch.randn(N, generator=gen).to(dtype)
        y = fourbit.linear(x.to(DEV), qw, bias.to(DEV))
        # the CUDA GEMV (M <= 16) rounds lut - z, s and their product in x's dtype (csrc/cuda/gemv.cu); the
        # Triton GEMM rounds the float32 dequantized weight once; fp32 x is exact on both
        roundings = 4.1 if M <= 16 else 1.0
        testing.assert_linear_close(y.cpu(), x, qw.dequantize().cpu(), bias, f"{name} M={M} N={N} K={K}",
                                    operand_dtype=dtype, operand_roundings=roundings)


def test_linear_out_guarded_and_graph_and_compile():
    qw = fourbit.quantize(_w(96, 512, 3).to(DEV), "nvfp4")
    for M in (1, 64):
        x = torch.randn(M, 512, device=DEV, dtype=torch.bfloat16)
        guard = torch.full((M * 96 + 64,), 3.0, device=DEV, dtype=torch.bfloat16)
        out = guard[32:32 + M * 96].view(M, 96)
        OPS.linear_out(x, *qw.op_args(), None, out)
        testing.assert_bit_exact(out, fourbit.linear(x, qw), "out")
        assert torch.all(guard[:32] == 3.0) and torch.all(guard[32 + M * 96:] == 3.0), "wrote outside out"
    lin = fourbit.QuantLinear.from_linear(torch.nn.Linear(512, 96).to(DEV), "int4")
    x = torch.randn(4, 512, device=DEV, dtype=torch.bfloat16)
    eager = lin(x)
    compiled = torch.compile(lin, fullgraph=True)
    testing.assert_bit_exact(compiled(x), eager, "compiled")
    static_x = x.clone()
    lin(static_x)  # warm up outside the capture
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_y = lin(static_x)
    static_x.copy_(torch.randn_like(x))
    g.replay()
    testing.assert_bit_exact(static_y, lin(static_x), "graph replay")


def test_module_moved_to_gpu_and_large_m():
    """A QuantLinear built on the CPU and moved with .cuda() computes the same function there; M = 16384 works."""
    lin = torch.nn.Linear(576, 40)  # K = 576: int4 g128 groups cross rows
    q = fourbit.QuantLinear.from_linear(lin, "int4")
    x = torch.randn(16384, 576, generator=torch.Generator().manual_seed(9)).to(torch.bfloat16)
    y = q.cuda()(x.to(DEV))
    bias = lin.bias.detach().to(torch.bfloat16)  # the module adds its bias in x's dtype
    testing.assert_linear_close(y.cpu(), x, testing.reference_dequantize(lin.weight, "int4"), bias,
                                "moved module, M=16384", operand_dtype=torch.bfloat16)


@pytest.mark.parametrize("name", ["int4", "nf4", "nf4_dq", "nvfp4", "mxfp4", "int8"])
def test_eager_fast_path_matches_the_op(name):
    """fourbit.ops.eager (plain eager CUDA calls skip torch.library dispatch) gives the op's result bit for bit on
    every kernel path (GEMV, fused GEMM, dequantize + cuBLAS), and hands bad input to the op, which names it."""
    from fourbit.ops import eager
    qw = fourbit.quantize(_w(96, 512, 4).to(DEV), name)
    bias = torch.randn(96, device=DEV, dtype=torch.bfloat16)
    for M in (1, 17, 300):
        x = torch.randn(2, M, 512, device=DEV, dtype=torch.bfloat16)
        assert eager.usable(x, bias)
        fast = eager.linear(x, qw.eager_plan(), bias)
        testing.assert_bit_exact(fast, OPS.linear(x, *qw.op_args(), bias), f"{name} M={M}")
        testing.assert_bit_exact(fourbit.linear(x, qw, bias), fast, f"{name} M={M} public")
    assert eager.linear(torch.randn(3, 500, device=DEV, dtype=torch.bfloat16), qw.eager_plan(), None) is None
    with pytest.raises(ValueError, match="x must have shape"):
        fourbit.linear(torch.randn(3, 500, device=DEV, dtype=torch.bfloat16), qw)
    with pytest.raises(TypeError, match="bias must have x's dtype"):
        fourbit.linear(torch.randn(3, 512, device=DEV, dtype=torch.bfloat16), qw, bias.float())
    xg = torch.randn(3, 512, device=DEV, requires_grad=True)
    assert not eager.usable(xg, None)
    fourbit.linear(xg, qw).sum().backward()  # autograd goes through the op
    assert xg.grad is not None and xg.grad.shape == xg.shape


def test_eager_plan_follows_the_module_buffers():
    """The module's cached plan sees in-place loads (load_state_dict) and is rebuilt when buffers are replaced."""
    a, b = torch.nn.Linear(256, 64).to(DEV), torch.nn.Linear(256, 64).to(DEV)
    qa, qb = (fourbit.QuantLinear.from_linear(m, "int4") for m in (a, b))
    x = torch.randn(5, 256, device=DEV)
    ya, yb = qa(x), qb(x)
    qa.load_state_dict(qb.state_dict())  # copies into the same buffers
    testing.assert_bit_exact(qa(x), yb, "after load_state_dict")
    qa.qweight = qb.qweight.clone()  # a new buffer object
    testing.assert_bit_exact(qa(x), yb, "after buffer replacement")
    moved = fourbit.QuantLinear.from_linear(a.cpu(), "int4").cuda()
    testing.assert_bit_exact(moved(x), ya, "after .cuda()")


@pytest.mark.parametrize("name", ["int4", "nvfp4"])
def test_linear_split_k_graph_and_compile(name):
    """M = 64, K = 4096 takes the split-K GEMM (float32 workspace + reduce kernel): the same bits eagerly, under
    torch.compile(fullgraph=True) and in a CUDA-graph replay (the workspace comes from the graph's pool), on a
    side stream, and run to run; within the bound of the oracle."""
    lin = fourbit.QuantLinear.from_linear(torch.nn.Linear(4096, 96).to(DEV), name)
    x = torch.randn(64, 4096, device=DEV, dtype=torch.bfloat16)
    eager = lin(x)
    testing.assert_bit_exact(lin(x), eager, "rerun")
    testing.assert_bit_exact(torch.compile(lin, fullgraph=True)(x), eager, "compiled")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        side = lin(x)
    torch.cuda.current_stream().wait_stream(s)
    testing.assert_bit_exact(side, eager, "side stream")
    static_x = x.clone()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_y = lin(static_x)
    x2 = torch.randn_like(x)
    static_x.copy_(x2)
    g.replay()
    testing.assert_bit_exact(static_y, lin(x2), "graph replay")
    testing.assert_linear_close(static_y.cpu(), x2.cpu(), lin.dequantize().cpu(), lin.bias.detach().bfloat16().cpu(),
                                f"{name} split-K graph", operand_dtype=torch.bfloat16)
