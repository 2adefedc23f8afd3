"""Two GPUs: every op called on cuda:1 tensors while cuda:0 is the current device (how a model spread over GPUs by a
device_map runs its later layers) gives the bits the same call gives on cuda:0, and leaves cuda:0 current.

Why: the native and Triton kernels launch on the current device; without the ops' device guard (fourbit/ops/cuda.py,
on_device) these calls launch on cuda:0 with cuda:1's pointers. The two devices are the same model of GPU and every
kernel is deterministic (fixed-order split-K, no timing-based tuning), so the oracle is the cuda:0 result, bit for bit;
the cuda:0 results themselves are checked against the FP32 references by test_gpu_ops.py and the kernel tests."""
from __future__ import annotations

import pytest
import torch

import fourbit
from fourbit import testing

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")]
OPS = torch.ops.fourbit
D0, D1 = "cuda:0", "cuda:1"
# M = 1 / 16 / 48 / 300 / 2100: the GEMV, the small-M GEMM, the register-A wgmma GEMM (Hopper), and dequantize +
# cuBLAS beyond it (fourbit/ops/cuda.py's route)
MS = (1, 16, 48, 300, 2100)


def _pair(t: torch.Tensor):
    """t on cuda:0 and on cuda:1."""
    return t.to(D0), t.to(D1)


def _same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """b (cuda:1) equals a (cuda:0) bit for bit, and cuda:0 is still the current device."""
    assert b.device == torch.device(D1), f"{what}: result on {b.device}"
    assert torch.cuda.current_device() == 0, f"{what}: the call changed the current device"
    testing.assert_bit_exact(b.cpu(), a.cpu(), what)


@pytest.fixture(autouse=True)
def _current_is_cuda0():
    torch.cuda.set_device(0)
    yield
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)


@pytest.mark.parametrize("name", ["int4", "int4_sym", "nf4", "bnb_fp4", "nvfp4", "mxfp4", "int8_asym"])
def test_ops_on_the_second_gpu(name):
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(256, 1024, generator=gen) * 0.05
    qw0, qw1 = (fourbit.quantize(t, name) for t in _pair(w.to(torch.bfloat16)))
    for a, b, key in zip(qw0.op_args()[:4], qw1.op_args()[:4], ("qdata", "scales", "zeros", "global_scale")):
        _same(a, b, f"{name} quantize {key}")
    _same(qw0.dequantize(torch.bfloat16), qw1.dequantize(torch.bfloat16), f"{name} dequantize")
    codes = torch.randint(0, 16, (8, 96), dtype=torch.uint8, generator=gen)
    p0, p1 = (OPS.pack_nibbles(c) for c in _pair(codes))
    _same(p0, p1, "pack")
    _same(OPS.unpack_nibbles(p0), OPS.unpack_nibbles(p1), "unpack")
    bias = torch.randn(256, generator=gen).to(torch.bfloat16)
    for M in MS:
        x = torch.randn(M, 1024, generator=gen).to(torch.bfloat16)
        (x0, x1), (b0, b1) = _pair(x), _pair(bias)
        y0 = OPS.linear(x0, *qw0.op_args(), b0)
        _same(y0, OPS.linear(x1, *qw1.op_args(), b1), f"{name} op linear M={M}")
        out = torch.empty(M, 256, dtype=torch.bfloat16, device=D1)
        OPS.linear_out(x1, *qw1.op_args(), b1, out)
        _same(y0, out, f"{name} op linear_out M={M}")
        _same(y0, fourbit.linear(x1, qw1, b1), f"{name} linear (eager fast path) M={M}")
        _same(y0, fourbit.linear(x1, qw1, b1), f"{name} linear (replay) M={M}")


@pytest.mark.parametrize("name", ["int4", "nf4", "nvfp4"])
@torch.no_grad()  # the eager fast path serves calls that record no autograd graph (the module's bias needs grad)
def test_module_on_the_second_gpu(name):
    """A QuantLinear moved to cuda:1 (its cached plan, first calls and replays) computes what it does on cuda:0, and
    its eager fast path (fourbit.ops.eager, under the plan's device guard) serves those calls: it recorded a replay
    for every M."""
    lin = torch.nn.Linear(1024, 384).to(torch.bfloat16)
    q0 = fourbit.QuantLinear.from_linear(lin, name).to(D0)
    q1 = fourbit.QuantLinear.from_linear(lin, name).to(D1)
    gen = torch.Generator().manual_seed(3)
    for M in MS:
        x = torch.randn(2, M, 1024, generator=gen).to(torch.bfloat16)
        x0, x1 = _pair(x)
        y0 = q0(x0)
        for call in ("first call", "replay"):
            _same(y0, q1(x1), f"{name} module M={M} {call}")
    assert len(q1.__dict__["_fourbit_plan"][1].replays) == len(MS), "the eager path did not take cuda:1's calls"


@pytest.mark.parametrize("name", ["int4", "mxfp4"])
@torch.no_grad()
def test_w4a8_on_the_second_gpu(name):
    """The opt-in FP8 path (activation quantizer, then the FP8 GEMM) on cuda:1, through the op and the module."""
    lin = torch.nn.Linear(1024, 256).to(torch.bfloat16)
    q0 = fourbit.QuantLinear.from_linear(lin, name, act="fp8_e4m3").to(D0)
    q1 = fourbit.QuantLinear.from_linear(lin, name, act="fp8_e4m3").to(D1)
    gen = torch.Generator().manual_seed(5)
    for M in (1, 256, 1024, 2048):
        x0, x1 = _pair(torch.randn(M, 1024, generator=gen).to(torch.bfloat16))
        y0 = q0(x0)
        for call in ("first call", "replay"):
            _same(y0, q1(x1), f"{name} w4a8 module M={M} {call}")
    assert q1.__dict__["_fourbit_w4a8_plan"][1].replays, "the eager path did not take cuda:1's calls"
