"""Replays of fourbit.ops.eager: a cached weight plan re-issues its first call's launches (the native GEMV call with
resolved weight arguments, or the recorded Triton launches) with each new x / out / bias. The CPU test checks the
record -> replay mapping with stand-in compiled kernels; the GPU tests check replays against the registered op bit
for bit on every path, under CUDA-graph capture, and that the replay is really taken."""
from __future__ import annotations

import pytest
import torch

import fourbit
from fourbit import testing
from fourbit.kernels import _launch as L
from fourbit.ops import cuda as cuda_ops
from fourbit.ops.cuda import route

OPS = torch.ops.fourbit
DEV = "cuda"


class _FakeKernel:
    """Stands in for a Triton CompiledKernel: .run records what the C launcher would receive."""
    function, packed_metadata = 7, ("meta",)

    def __init__(self):
        self.calls = []

    def run(self, g0, g1, g2, stream, function, meta, launch_md, enter, exit_, *args):
        self.calls.append(((g0, g1, g2), stream, function, meta, launch_md, enter, exit_, args))


def _fake_jit(kernel):
    class J:  # fn[grid](*args, **kwargs) -> kernel, with Triton's arg_names
        arg_names = ["x", "w", "ws", "y", "n", "BLOCK"]

        def __getitem__(self, grid):
            return lambda *a, **kw: kernel
    return J()


def test_replay_maps_call_tensors_scratch_and_weights():
    """Named tensors are swapped by address, scratch is allocated afresh, weight views become fixed addresses, and a
    launch argument that is none of these (a per-call temporary) refuses the replay."""
    k = _FakeKernel()
    jit = _fake_jit(k)
    weight = torch.arange(64, dtype=torch.float32)
    x, y = torch.randn(8), torch.empty(8)
    with L.recording() as rec:
        ws = L.scratch((2, 8), torch.float32, "cpu")
        L.launch(jit, (3,), x, weight[16:], ws, y, 8, BLOCK=128, num_warps=4)
        L.launch(jit, (1, 2), ws, weight, ws, y, 16, BLOCK=64)
    assert rec.ok and len(rec.launches) == 2 and rec.launches[0][1] == (3, 1, 1)
    rep = L.Replay.build(rec, {"x": x, "out": y, "bias": None}, (weight,))
    assert rep is not None and rep.scratch == [((2, 8), torch.float32, torch.device("cpu"))]
    x2, y2 = torch.randn(8), torch.empty(8)
    k.calls.clear()
    scr = rep(1234, {"x": x2, "out": y2, "bias": None})
    assert len(scr) == 1 and scr[0].shape == (2, 8) and scr[0].data_ptr() != ws.data_ptr()
    (g, stream, fn, meta, md, enter, exit_, a), (g2, *_, a2) = k.calls
    assert (g, stream, fn, meta, md, enter, exit_) == ((3, 1, 1), 1234, 7, ("meta",), None, None, None)
    assert a == (x2.data_ptr(), weight[16:].data_ptr(), scr[0].data_ptr(), y2.data_ptr(), 8, 128)
    assert g2 == (1, 2, 1) and a2 == (scr[0].data_ptr(), weight.data_ptr(), scr[0].data_ptr(), y2.data_ptr(), 16, 64)
    with L.recording() as rec:
        L.launch(jit, (1,), x, weight * 2, y, y, 8, BLOCK=128)  # weight * 2: a temporary of the call
    assert L.Replay.build(rec, {"x": x, "out": y, "bias": None}, (weight,)) is None
    with L.recording() as rec:
        L.launch(jit, (1,), x, weight, y, y, 8)  # BLOCK left out: its value is not known here
    assert not rec.ok and L.Replay.build(rec, {"x": x, "out": y}, (weight,)) is None
    import triton
    assert not L.hooks_active()  # Triton's default: no launch hook (3.5+: an empty HookChain)
    hook = lambda *a: None  # noqa: E731
    chain = triton.knobs.runtime.launch_enter_hook
    if hasattr(chain, "add"):
        chain.add(hook)
        try:
            assert L.hooks_active()  # a profiler's hook: replays step aside so that it sees every launch
        finally:
            chain.remove(hook)


def test_replay_offsets_host_steps_and_callable_grids():
    """A launch argument inside a call / scratch tensor (a row slice) replays at the same offset in the new tensor; a
    host step (a torch op between launches) gets the new tensors (dtype views kept); a callable grid is recorded
    evaluated on the launch's arguments."""
    k = _FakeKernel()
    jit = _fake_jit(k)
    weight = torch.arange(64, dtype=torch.float32)
    seen = []

    def step(a, w, b, n):  # the host step: records what it was called with
        seen.append((a, w, b, n))

    x, y = torch.randn(8, 4), torch.empty(8, 4)
    with L.recording() as rec:
        ws = L.scratch((8, 4), torch.int8, "cpu")
        L.launch(jit, (1,), x[2:], weight, ws[5:], y[6:], 2, BLOCK=16)
        L.host(step, ws.view(torch.uint8), weight, None, 3)
        L.launch(jit, lambda meta: (meta["n"] * 10 // meta["BLOCK"],), x, weight, ws, y, 64, BLOCK=32, num_warps=2)
    rep = L.Replay.build(rec, {"x": x, "out": y, "bias": None}, (weight,))
    assert rep is not None
    x2, y2 = torch.randn(8, 4), torch.empty(8, 4)
    k.calls.clear()
    seen.clear()
    (s2,) = rep(5, {"x": x2, "out": y2, "bias": None})
    (g1, *_, a1), (g2, *_, a2) = k.calls
    assert a1 == (x2.data_ptr() + 2 * 16, weight.data_ptr(), s2.data_ptr() + 5 * 4, y2.data_ptr() + 6 * 16, 2, 16)
    assert g2 == (20, 1, 1) and a2 == (x2.data_ptr(), weight.data_ptr(), s2.data_ptr(), y2.data_ptr(), 64, 32)
    (a, w, b, n), = seen
    assert a.dtype == torch.uint8 and a.data_ptr() == s2.data_ptr() and w is weight and b is None and n == 3
    with L.recording() as rec:  # a host step given a slice (not a whole tensor) cannot be replayed
        L.host(step, x[1:], weight, None, 3)
    assert L.Replay.build(rec, {"x": x, "out": y}, (weight,)) is None


def test_plan_cache_follows_the_stored_tensors():
    """plan_for / w4a8_plan_for (CPU tensors: the cache logic needs no GPU): one plan per owner and op while the stored
    tensors are the same objects; a replaced tensor makes a fresh plan; an uncacheable plan is never stored; the W4A16
    and W4A8 plans of one owner do not share a slot."""
    from fourbit.ops import eager, w4a8
    qw = fourbit.quantize(torch.randn(32, 256), "int4")
    t = tuple(qw.stored_tensors().values())
    w8_args = lambda: w4a8.w4a8_args(qw)  # noqa: E731
    p1 = eager.plan_for(qw, t, qw.op_args, True)
    q1 = eager.w4a8_plan_for(qw, t, w8_args, True)
    assert isinstance(p1, eager.Plan) and isinstance(q1, eager.W4A8Plan) and (q1.N, q1.K) == (32, 256)
    assert eager.plan_for(qw, t, qw.op_args, True) is p1 and eager.w4a8_plan_for(qw, t, w8_args, True) is q1
    t2 = (t[0].clone(),) + t[1:]  # a replaced buffer (e.g. after load_state_dict)
    p2 = eager.plan_for(qw, t2, qw.op_args, True)
    assert p2 is not p1 and eager.plan_for(qw, t2, qw.op_args, True) is p2
    p3 = eager.plan_for(qw, t, qw.op_args, False)
    assert p3 is not p1 and not p3.cached and eager.plan_for(qw, t2, qw.op_args, True) is p2


def _case(name, N, K, seed):
    gen = torch.Generator().manual_seed(seed)
    qw = fourbit.quantize((torch.randn(N, K, generator=gen) * 0.05).to(DEV), name)
    return qw, gen


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["int4", "nf4", "nvfp4", "mxfp4", "int8"])
def test_gpu_replay_matches_the_op(name):
    """Every path (GEMV M <= 16 or from M = 9 the small-M GEMM, fused GEMM with and without split-K or the wgmma
    GEMM, dequantize + cuBLAS), bias absent / aligned / misaligned by 2 bytes: the second and third calls (replays,
    with new x) equal the op bit for bit."""
    N, K = 256, 4096
    qw, gen = _case(name, N, K, 11)
    buf = torch.randn(N + 1, generator=gen).bfloat16().to(DEV)
    paths = {1: "gemv", 16: "gemv", 17: "fused", 64: "fused", 65: "fused", 200: "fused", 300: "dequant_mm"}
    for M, path in paths.items():
        for bias in (None, buf[:N], buf[1:]):
            for rep in range(3):
                x = torch.randn(M, K, generator=gen).bfloat16().to(DEV)
                y = fourbit.linear(x, qw, bias)
                testing.assert_bit_exact(y, OPS.linear(x, *qw.op_args(), bias), f"{name} M={M} call {rep}")
            key = (M, torch.bfloat16, None if bias is None else bias.data_ptr() % 16 == 0)
            want = route(x, *qw.op_args())  # on Hopper the wgmma GEMM takes over inside each format's window
            # (the small-M GEMM takes 8 < M <= 64 for the 4-bit formats it has, the wgmma GEMM its windows)
            rs = want == "rs" and cuda_ops.RS_MIN_M < M <= cuda_ops.RS_MAX_M  # Hopper's register-A GEMM's window
            assert want == path or rs or (path == "fused" and (M <= 256 and want == "tc" or M <= 64 and want == "sm")) \
                or (path == "gemv" and M > 8 and want == "sm"), (M, want)
            assert qw.eager_plan().replays[key][0] == want, (M, qw.eager_plan().replays.get(key))
    x = torch.randn(64, K, generator=gen).to(DEV)  # float32 x: its own replay
    testing.assert_bit_exact(fourbit.linear(x, qw), OPS.linear(x, *qw.op_args(), None), f"{name} fp32 first")
    testing.assert_bit_exact(fourbit.linear(x, qw), OPS.linear(x, *qw.op_args(), None), f"{name} fp32 replay")


@pytest.mark.gpu
def test_gpu_replay_split_k_workspace_and_graph():
    """The split-K replay allocates its float32 workspace per call (two calls in flight on two streams do not share
    it), and a replay captured into a CUDA graph reruns with the graph's new input."""
    lin = fourbit.QuantLinear.from_linear(torch.nn.Linear(4096, 128).to(DEV), "int4")
    x1, x2 = (torch.randn(64, 4096, device=DEV, dtype=torch.bfloat16) for _ in range(2))
    ref1, ref2 = lin(x1), lin(x2)  # first call records
    # the small-M GEMM (M <= 64, the 4-bit formats), else the Triton kernel or on Hopper a wgmma GEMM: all of them
    # split K into a per-call workspace here
    assert lin._fourbit_plan[1].replays[(64, torch.bfloat16, True)][0] in ("sm", "rs", "fused", "tc")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    ya = lin(x1)
    with torch.cuda.stream(s):
        yb = lin(x2)
    torch.cuda.current_stream().wait_stream(s)
    testing.assert_bit_exact(ya, ref1, "main stream")
    testing.assert_bit_exact(yb, ref2, "side stream")
    static_x = x1.clone()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_y = lin(static_x)
    static_x.copy_(x2)
    g.replay()
    testing.assert_bit_exact(static_y, ref2, "graph replay")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["int4", "int4_sym", "mxfp4"])
def test_gpu_w4a8_replay_matches_the_op(name, monkeypatch):
    """W4A8 (act="fp8_e4m3") eager calls replay their first call: on Hopper the CUDA quantizer + CUDA GEMM up to
    M = 1024 as one prepared native call (kind "native"), above that window (M = 1043: int4 block-scaled, mxfp4 the
    row-wise GEMM) the recorded launches and host steps (kind "replay"); elsewhere the fused kernel (M < 512), the
    block-scaled cuBLAS path (M = 512) and with fused tail rows (M = 515) as recorded replays; with the autotuner's
    pick and a fixed config; bias absent / aligned / misaligned. Each replay equals the op bit for bit and is the
    kind the op's routing says; an in-place weight update (a new version) records afresh."""
    from fourbit.kernels import w4a8 as kw
    from fourbit.ops import _native_cuda as nc
    from fourbit.ops import w4a8
    N, K = 256, 1024
    qw, gen = _case(name, N, K, 5)
    qd, sc, _z, fmt, G = w4a8.w4a8_args(qw)
    hopper = nc.available() and torch.cuda.get_device_capability() == (9, 0)
    buf = torch.randn(N + 1, generator=gen).bfloat16().to(DEV)
    before = kw.blockwise_fallbacks
    for autotune in ("0", "1"):
        monkeypatch.setenv("FOURBIT_TRITON_AUTOTUNE", autotune)
        qw.__dict__.pop("_fourbit_w4a8_plan", None)
        for M in ((1, 64, 512, 515, 1043) if autotune == "0" else (64,)):
            for bias in (None, buf[:N], buf[1:]):
                for rep in range(3):
                    x = torch.randn(M, K, generator=gen).bfloat16().to(DEV)
                    y = fourbit.linear(x, qw, bias, act="fp8_e4m3")
                    ref = OPS.w4a8_linear(x, *fourbit.ops.w4a8.w4a8_args(qw), bias)
                    testing.assert_bit_exact(y, ref, f"{name} M={M} autotune={autotune} call {rep}")
                plan = qw.__dict__["_fourbit_w4a8_plan"][1]
                kinds = {v[0] for k_, v in plan.replays.items() if k_[0] == M}
                native = w4a8.native_gemm(qd, sc, fmt, G, M) and w4a8.act_cuda(x.view(M, K))
                assert kinds == {"native" if native else "replay"}, (M, kinds)
                assert native or not (hopper and M <= w4a8.NATIVE_MAX_M and name != "mxfp4"), "int4, Hopper: CUDA"
    assert kw.blockwise_fallbacks == before, kw.last_fallback_error
    plan = qw.__dict__["_fourbit_w4a8_plan"][1]
    n = len(plan.replays)
    with torch.no_grad():
        qw.scales.copy_(qw.scales.flip(0))  # in place: the plan's version key changes
    x = torch.randn(64, K, generator=gen).bfloat16().to(DEV)
    testing.assert_bit_exact(fourbit.linear(x, qw, act="fp8_e4m3"),
                             OPS.w4a8_linear(x, *fourbit.ops.w4a8.w4a8_args(qw), None), f"{name} after update")
    assert len(plan.replays) == n + 1


@pytest.mark.gpu
def test_gpu_w4a8_native_replay_workspace():
    """The prepared native W4A8 call where the CUDA GEMM splits K through the float32 workspace (1 weight tile x 16
    splits; its workspace shares the call's buffer with x8 and the row scales): bit-exact with the op, bias aligned
    and misaligned, x fp16 and bf16."""
    from fourbit.ops import _native_cuda as nc
    from fourbit.ops import w4a8
    N, K, M = 128, 16384, 7
    qw, gen = _case("int4", N, K, 9)
    qd, sc, _z, fmt, G = w4a8.w4a8_args(qw)
    if not (w4a8.native_gemm(qd, sc, fmt, G, M) and nc.available()):
        pytest.skip("needs the CUDA W4A8 GEMM (an sm_90 device and the CUDA build)")
    assert nc._lib().cuda_linear_w4a8_workspace(M, N, K) == 16 * M * N
    buf = torch.randn(N + 1, generator=gen).to(DEV)
    for dt in (torch.bfloat16, torch.float16):
        for bias in (None, buf[:N].to(dt), buf.to(dt)[1:]):
            for rep in range(3):
                x = torch.randn(M, K, generator=gen).to(dt).to(DEV)
                testing.assert_bit_exact(fourbit.linear(x, qw, bias, act="fp8_e4m3"),
                                         OPS.w4a8_linear(x, *w4a8.w4a8_args(qw), bias), f"{dt} call {rep}")
    kinds = {v[0] for v in qw.__dict__["_fourbit_w4a8_plan"][1].replays.values()}
    assert kinds == {"native"}, kinds
