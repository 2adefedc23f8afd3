"""Eager fast path of `linear` on CUDA: the registered op's kernels, minus torch.library's dispatch and autograd
wrappers and the per-call weight checks, for the plain eager call (plain CUDA tensors, no autograd wanted, no
tracing, no torch function / dispatch mode).

Why: on the H100 machine's host an eager `torch.ops.fourbit.linear` call cost 140-240 us of Python (2026-11-26,
bench/eager_overhead.py), 10x the M = 1 kernel, and do_bench timed that host time, not the kernel. A weight is
checked once (its "plan"); each call then checks only x and bias. Anything unusual, bad input included, returns
None so the caller takes the registered op, which raises the named errors; results are identical either way (same
launcher, same kernels).
"""
from __future__ import annotations

from typing import Optional

import torch

from . import _checks as C
from .cuda import linear_into

_ACT = frozenset(C.ACT_DTYPES)


class Plan:
    """A checked weight: the op's weight arguments (qdata, scales, zeros, global_scale, lut, group_size), N, K."""
    __slots__ = ("args", "N", "K", "device")

    def __init__(self, args):
        self.N, self.K = C.check_weight(*args)
        self.args, self.device = tuple(args), args[0].device


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
    p = Plan(make_args())
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
    linear_into(x.view(M, K), *plan.args, bias, out.view(M, N))
    return out
