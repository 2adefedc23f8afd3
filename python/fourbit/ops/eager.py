"""Eager fast path of `linear` on CUDA: the registered op's kernels, minus torch.library's dispatch and autograd
wrappers and the per-call weight checks, for the plain eager call (plain CUDA tensors, no autograd wanted, no
tracing, no torch function / dispatch mode).

Why: on the H100 machine's host an eager `torch.ops.fourbit.linear` call cost 140-240 us of Python (2026-11-26,
bench/eager_overhead.py), 10x the M = 1 kernel, and do_bench timed that host time, not the kernel. A weight is
checked once (its "plan"); each call then checks only x and bias. Anything unusual, bad input included, returns
None so the caller takes the registered op, which raises the named errors; results are identical either way (same
launcher, same kernels).

Replays: a cached plan also keeps, per (M, dtype, bias state), what the first such call launched: for the GEMV the
native call with its weight arguments resolved (_native_cuda.linear_prepared), for the Triton paths the recorded
launches (kernels._launch.Replay: compiled kernel, grid, arguments), re-issued through each compiled kernel's C
launcher with the new x, out and bias. The launches and their order are the first call's, so the bits are too
(tests/test_gpu_ops.py checks replays against the op). Not recorded: calls inside a CUDA-graph capture (the tuner
cannot time there), uncached plans, and while a Triton launch hook (a profiler) is set.
"""
from __future__ import annotations

from typing import Optional

import torch

from . import _checks as C
from . import _native_cuda
from .cuda import linear_into, mm_into, route

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
    if bias is not None and type(bias) is not torch.Tensor:
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)))


def plan_for(owner, tensors, make_args, cacheable: bool) -> Plan:
    """owner's cached Plan while `tensors` (its stored pieces) are the same objects; else a fresh, checked one
    (kept when cacheable: the op arguments are those tensors themselves, so in-place updates stay visible)."""
    c = owner.__dict__.get("_fourbit_plan")
    if c is not None and len(c[0]) == len(tensors) and all(a is b for a, b in zip(c[0], tensors)):
        return c[1]
    p = Plan(make_args(), cacheable)
    if cacheable:
        owner.__dict__["_fourbit_plan"] = (tuple(tensors), p)
    return p


def linear(x: torch.Tensor, plan: Plan, bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """y [..., N] = x [..., K] @ dequant(W)^T (+ bias), or None when the registered op must take this call."""
    N, K = plan.N, plan.K
    if (x.dtype not in _ACT or x.dim() == 0 or x.shape[-1] != K or x.device != plan.device or not x.is_contiguous()
            or x.data_ptr() % C.ALIGN):
        return None
    if bias is not None and (bias.dtype != x.dtype or bias.shape != (N,) or bias.device != x.device
                             or not bias.is_contiguous()):
        return None
    M = x.numel() // K
    if M == 0:
        return None
    out = torch.empty((*x.shape[:-1], N), dtype=x.dtype, device=x.device)
    x2, o2 = x.view(M, K), out.view(M, N)
    if not plan.cached or torch.cuda.current_device() != plan.device.index:
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
    if kind == "gemv":
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
    path = route(x2, plan.args[1], plan.args[3], plan.args[4])
    if path == "gemv":
        linear_into(x2, *plan.args, bias, o2)
        fn = _native_cuda.linear_prepared(plan.args, x2.shape[0], x2.dtype)
        return ("gemv", fn) if fn is not None else (None, None)
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
