"""Eager fast path of `linear` on CUDA: the registered op's kernels, minus torch.library's dispatch and autograd
wrappers and the per-call weight checks, for the plain eager call (plain CUDA tensors, no autograd wanted, no
tracing, no torch function / dispatch mode).

Why: on the H100 machine's host an eager `torch.ops.fourbit.linear` call cost 140-240 us of Python (2026-11-26,
bench/eager_overhead.py), 10x the M = 1 kernel, and do_bench timed that host time, not the kernel. A weight is
checked once (its "plan"); each call then checks only x and bias. Anything unusual, bad input included, returns
None so the caller takes the registered op, which raises the named errors; results are identical either way (same
launcher, same kernels).

Replays: a cached plan also keeps, per (M, dtype, bias state), what the first such call launched: for the GEMV the
native call with its weight arguments resolved (_native_cuda.linear_prepared), for dequantize + cuBLAS with the CUDA
dequantize its prepared call (_native_cuda.dequantize_prepared) and then cuBLAS, for the Triton paths the recorded
launches (kernels._launch.Replay: compiled kernel, grid, arguments), re-issued through each compiled kernel's C
launcher with the new x, out and bias. The launches and their order are the first call's, so the bits are too
(tests/test_gpu_ops.py checks replays against the op). Not recorded: calls inside a CUDA-graph capture (the graph
replays those itself, and some first-call probes do not run there), uncached plans, and while a Triton launch hook
(a profiler) is set.
"""
from __future__ import annotations

from typing import Optional

import torch

from . import _checks as C
from . import _native_cuda
from .cuda import NATIVE_PATHS as _NATIVE, linear_into, mm_into, route, run_on

_ACT = frozenset(C.ACT_DTYPES)


MAX_REPLAYS = 64  # per plan (distinct M values seen); past this the cache starts over


class Plan:
    """A checked weight: the op's weight arguments (qdata, scales, zeros, global_scale, lut, group_size), N, K; when
    cached (its tensors are the stored ones, kept alive by the plan) the per-(M, dtype, bias) replays."""
    __slots__ = ("args", "N", "K", "device", "cached", "replays")

    def __init__(self, args, cached: bool = False):
        self.N, self.K = C.check_weight(*args)
        self.args, self.device, self.cached, self.replays = tuple(args), args[0].device, cached, {}


def usable(x: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    """Whether this call may skip the op: plain CUDA tensors, nothing to record for autograd or a tracer."""
    if type(x) is not torch.Tensor or not x.is_cuda or torch.compiler.is_compiling():
        return False
    if torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled():
        return False
    if bias is not None and type(bias) not in (torch.Tensor, torch.nn.Parameter):  # a module's bias is a Parameter
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)))


def plan_for(owner, tensors, make_args, cacheable: bool, kind=None, key: str = "_fourbit_plan"):
    """owner's cached plan (a `kind`: Plan, or W4A8Plan under its own key) while `tensors` (its stored pieces) are the
    same objects; else a fresh, checked one (kept when cacheable: the op arguments are those tensors themselves or
    views of them, so in-place updates stay visible)."""
    c = owner.__dict__.get(key)
    if c is not None and len(c[0]) == len(tensors) and all(a is b for a, b in zip(c[0], tensors)):
        return c[1]
    p = (kind or Plan)(make_args(), cacheable)
    if cacheable:
        owner.__dict__[key] = (tuple(tensors), p)
    return p


def _rows(x: torch.Tensor, N: int, K: int, device, bias: Optional[torch.Tensor]) -> int:
    """M (rows of x) when x and bias are what the kernels take as they are, else 0 (the op decides and names why)."""
    if (x.dtype not in _ACT or x.dim() == 0 or x.shape[-1] != K or x.device != device or not x.is_contiguous()
            or x.data_ptr() % C.ALIGN):
        return 0
    if bias is not None and (bias.dtype != x.dtype or bias.shape != (N,) or bias.device != x.device
                             or not bias.is_contiguous()):
        return 0
    return x.numel() // K


def linear(x: torch.Tensor, plan: Plan, bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """y [..., N] = x [..., K] @ dequant(W)^T (+ bias), or None when the registered op must take this call."""
    return run_on(plan.device, _linear, x, plan, bias)  # the plan's GPU current, as the op's guard does


def _linear(x, plan, bias):
    N, K = plan.N, plan.K
    M = _rows(x, N, K, plan.device, bias)
    if M == 0:
        return None
    out = torch.empty((*x.shape[:-1], N), dtype=x.dtype, device=x.device)
    x2, o2 = x.view(M, K), out.view(M, N)
    if not plan.cached:
        linear_into(x2, *plan.args, bias, o2)
        return out
    key = (M, x.dtype, None if bias is None else bias.data_ptr() % 16 == 0)  # Triton specialized on alignment
    r = plan.replays.get(key)
    if r is None:
        r = _first_call(x2, plan, bias, o2)
        if r is not None:
            if len(plan.replays) >= MAX_REPLAYS:
                plan.replays.clear()
            plan.replays[key] = r
        return out
    kind, fn = r
    if kind in _NATIVE:
        fn(x2, bias, o2, _native_cuda._stream(x.device))
    elif kind is None or _launch().hooks_active():
        linear_into(x2, *plan.args, bias, o2)
    else:
        scr = fn(_native_cuda._stream(x.device), {"x": x2, "out": o2, "bias": bias})
        if kind == "dequant_mm":
            mm_into(x2, scr[0], bias, o2)
    return out


def _launch():
    from ..kernels import _launch as L  # Triton plumbing: imported once a Triton path has run
    return L


def _first_call(x2, plan, bias, o2):
    """Runs the call (linear_into) and returns its replay entry (kind, fn): kind None = no replay, always take
    linear_into; None = nothing to store yet (inside a CUDA-graph capture)."""
    path = route(x2, *plan.args)
    if path in _NATIVE:
        linear_into(x2, *plan.args, bias, o2)
        fn = _native_cuda.linear_prepared(plan.args, x2.shape[0], x2.dtype, tc=path == "tc", rs=path == "rs")
        return (path, fn) if fn is not None else (None, None)
    if path == "dequant_mm" and _native_cuda.has_cuda():  # what dequantize_weight runs, when it is the CUDA kernel
        fn = _native_cuda.dequantize_prepared(*plan.args, x2.dtype)
        if fn is not None:  # replayed as a recorded one is: (stream, tensors) -> [the transient weight]
            mm_into(x2, fn(_native_cuda._stream(x2.device)), bias, o2)
            return (path, lambda stream, _tensors: [fn(stream)])
    if path == "scaled":  # Blackwell's tl.dot_scaled path: not recorded
        linear_into(x2, *plan.args, bias, o2)
        return (None, None)
    L = None if torch.cuda.is_current_stream_capturing() else _launch()
    if L is None or L.hooks_active():  # try again on a later call
        linear_into(x2, *plan.args, bias, o2)
        return None
    with L.recording() as rec:
        linear_into(x2, *plan.args, bias, o2)
    rep = L.Replay.build(rec, {"x": x2, "out": o2, "bias": bias}, plan.args)
    if rep is None or (path == "dequant_mm" and len(rep.scratch) != 1):
        return (None, None)
    return (path, rep)


# ---- W4A8 (act="fp8_e4m3") -------------------------------------------------------------------------------------------
# The same scheme for fourbit::w4a8_linear: the first call per (M, dtype, bias alignment, weight versions) runs
# fourbit.ops.w4a8.linear_into under a recording (activation quantizer, weight conversion, fused kernel or the
# block-scaled cuBLAS GEMM as a host step), later calls replay it. The weight versions are part of the key because
# the call decides data-dependent things once (mxfp4's scale folding, kernels.w4a8.fold_ok). Why: on the H100
# machine's host the eager op cost 208-676 us at M <= 1024, against ~100-210 us of GPU work (BENCHMARKS.md,
# 2026-11-26). Where the first call took the CUDA quantizer + CUDA GEMM (ops.w4a8.native_gemm and act_cuda), the
# replay is one native call instead (_native_cuda.w4a8_prepared, the same two launches): the recorded replay's two
# host steps still cost 41-72 us of host time a call on the H200 machine's host, against 19-33 for W4A16's prepared
# call (bench/probes/w4a8_eager.py, 2026-11-28), and do_bench's eager column showed that host time where it exceeded
# the L2 flush + kernel (4096^2 M = 1024: 58.7-252.9 us eager against ~55 from a graph, BENCHMARKS.md runs).

class W4A8Plan:
    """W4A8 op arguments (qdata, scales, zeros, fmt, group_size), N, K, and the replays (cached plans only): key ->
    ("native", fn(x, bias, out, stream)) or ("replay", kernels._launch.Replay)."""
    __slots__ = ("args", "N", "K", "device", "cached", "replays")

    def __init__(self, args, cached: bool = False):
        self.args, self.cached, self.replays = tuple(args), cached, {}
        self.N, self.K, self.device = args[0].shape[0], 2 * args[0].shape[1], args[0].device


def w4a8_plan_for(owner, tensors, make_args, cacheable: bool) -> W4A8Plan:
    """plan_for for the W4A8 op (its own key: a module may run both ops)."""
    return plan_for(owner, tensors, make_args, cacheable, W4A8Plan, "_fourbit_w4a8_plan")


def w4a8_linear(x: torch.Tensor, plan: W4A8Plan, bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """torch.ops.fourbit.w4a8_linear(x, *plan.args, bias), or None when the op must take this call."""
    return run_on(plan.device, _w4a8_linear, x, plan, bias)


def _w4a8_linear(x, plan, bias):
    from . import w4a8  # noqa: PLC0415
    N, K = plan.N, plan.K
    M = _rows(x, N, K, plan.device, bias)
    if M == 0:
        return None
    qdata, scales, zeros = plan.args[:3]
    key = (M, x.dtype, None if bias is None else bias.data_ptr() % 16 == 0, qdata._version, scales._version,
           zeros._version)
    r = plan.replays.get(key)
    if r is not None and (r[0] == "native" or not _launch().hooks_active()):
        out = torch.empty((*x.shape[:-1], N), dtype=x.dtype, device=x.device)
        if r[0] == "native":
            r[1](x, bias, out, _native_cuda._stream(x.device))
        else:
            r[1](_native_cuda._stream(x.device), {"x": x.view(M, K), "out": out.view(M, N), "bias": bias})
        return out
    try:  # every rule of the op (weight included) before the first launch; a failure goes to the op, which raises
        w4a8.check_w4a8(x, *plan.args, bias)
        C.aligned(x=x, qdata=qdata)
    except (ValueError, TypeError, RuntimeError):
        return None
    out = torch.empty((*x.shape[:-1], N), dtype=x.dtype, device=x.device)
    x2, o2 = x.view(M, K), out.view(M, N)
    if r is not None or not plan.cached or torch.cuda.is_current_stream_capturing():
        w4a8.linear_into(x2, *plan.args, bias, o2)
        return out
    fmt, G = plan.args[3:5]
    if w4a8.native_gemm(qdata, scales, fmt, G, M) and w4a8.act_cuda(x2):  # what linear_into launches for this call
        w4a8.linear_into(x2, *plan.args, bias, o2)
        from ..kernels import w4a8 as kw  # noqa: PLC0415 (the permutation ids)
        perm = kw.PERM_MXFP4 if fmt == "mxfp4" else kw.PERM_INT4
        r = ("native", _native_cuda.w4a8_prepared(qdata, scales, zeros, G, perm, M, x.dtype))
    else:
        L = _launch()
        if L.hooks_active():
            w4a8.linear_into(x2, *plan.args, bias, o2)
            return out
        with L.recording() as rec:
            w4a8.linear_into(x2, *plan.args, bias, o2)
        rep = L.Replay.build(rec, {"x": x2, "out": o2, "bias": bias}, plan.args[:3])
        if rep is None:
            return out
        r = ("replay", rep)
    if len(plan.replays) >= MAX_REPLAYS:
        plan.replays.clear()
    plan.replays[key] = r
    return out
