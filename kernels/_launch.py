"""Launch plumbing shared by the launchers: interpreter detection, exact-arithmetic launch options, dtype maps, and
the record / replay of a call's Triton launches that fourbit.ops.eager uses to skip the JIT's per-call work."""
import contextlib
import os
import threading

import torch
import triton
import triton.language as tl


def interpreting() -> bool:
    """True when Triton runs kernels in its numpy interpreter (TRITON_INTERPRET=1)."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None and hasattr(knobs, "runtime"):
        return bool(getattr(knobs.runtime, "interpret", False))
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


#: launch options for bit-exact kernels: no FMA contraction (the references round every product and sum)
EXACT = {"enable_fp_fusion": False}

#: torch activation dtype -> Triton dtype
TL_DTYPE = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    """A one-byte float tensor (float8_e4m3fn / float8_e8m0fnu) seen as uint8; other tensors unchanged."""
    return t.view(torch.uint8) if t.is_floating_point() and t.element_size() == 1 else t


def scale_kind(scales: torch.Tensor) -> int:
    """codecs.SCALE_F32 / SCALE_E4M3 / SCALE_E8M0 for a scales tensor."""
    return {torch.float32: 0, torch.float8_e4m3fn: 1, torch.float8_e8m0fnu: 2}[scales.dtype]


def bucket_entries(space: dict, M: int) -> list:
    """The entries of a tuning space {bucket: [configs]} for M rows: the first bucket >= next_power_of_2(M) (capped
    at 4096), else the largest."""
    mb = min(triton.next_power_of_2(M), 4096)
    return space[next((b for b in sorted(space) if mb <= b), max(space))]


def triton_version() -> tuple:
    """(major, minor) of the installed Triton."""
    return tuple(int(p) for p in triton.__version__.split(".")[:2])


# ---- record / replay ------------------------------------------------------------------------------------------------
# Why: on the H100 machine's host one JIT launch (fn[grid](...): argument binding, specialization key, cache lookup,
# a driver pointer query per tensor) cost ~100 us of Python, so an eager 17 <= M < 512 linear (GEMM + split-K reduce)
# spent 260-320 us on the host for 20-27 us of GPU work (BENCHMARKS.md, 2026-11-26). A recorded call keeps each
# launch's compiled kernel, grid and arguments; a replay passes them straight to the kernel's own C launcher (the
# call Triton itself ends with), with every pointer as a plain int.

_tls = threading.local()  # .rec: this thread's Recording in progress, or absent / None


class Recording:
    """The Triton launches of one call, in order: (compiled kernel, 3-d grid, positional arguments), plus the scratch
    tensors the call allocated (workspaces, outputs that are not the caller's). ok is False when some launch cannot
    be replayed (no compiled kernel came back: the interpreter, an asynchronous compile)."""

    def __init__(self):
        self.launches, self.scratch, self.ok = [], [], True


@contextlib.contextmanager
def recording():
    """Record the launches made inside the block (yields the Recording)."""
    prev = getattr(_tls, "rec", None)
    _tls.rec = rec = Recording()
    try:
        yield rec
    finally:
        _tls.rec = prev


def scratch(shape, dtype, device) -> torch.Tensor:
    """torch.empty for a call-private buffer; a replay allocates a fresh one in its place."""
    t = torch.empty(shape, dtype=dtype, device=device)
    rec = getattr(_tls, "rec", None)
    if rec is not None:
        rec.scratch.append(t)
    return t


def launch(fn, grid, *args, **kwargs):
    """fn[grid](*args, **kwargs) (kwargs: the remaining kernel parameters by name, then launch options), noted in the
    active Recording (a callable grid is evaluated on the launch's arguments)."""
    k = fn[grid](*args, **kwargs)
    rec = getattr(_tls, "rec", None)
    if rec is not None:
        if callable(grid):
            grid = grid({**dict(zip(fn.arg_names, args)), **kwargs})
        names = fn.arg_names[len(args):]
        if k is None or not hasattr(k, "packed_metadata") or any(n not in kwargs for n in names):
            rec.ok = False  # no compiled kernel, or a parameter left to its default: not replayable
        else:
            full = list(args) + [kwargs[n] for n in names]
            rec.launches.append((k, tuple(grid) + (1,) * (3 - len(grid)), full))
    return k


def host(fn, *args):
    """fn(*args), a non-Triton step of the call (a torch op between launches), noted in the active Recording: a
    replay calls fn again with the replay's tensors in place of the recorded ones (same shapes and dtypes)."""
    out = fn(*args)
    rec = getattr(_tls, "rec", None)
    if rec is not None:
        rec.launches.append((None, fn, list(args)))
    return out


def hooks_active() -> bool:
    """Whether a Triton launch hook is set (a profiler such as proton): replays would bypass it."""
    rt = getattr(getattr(triton, "knobs", None), "runtime", None)
    # Triton >= 3.5 keeps a HookChain (never None; empty .calls when unset); earlier versions None or a callable
    hook_set = lambda h: h is not None and bool(getattr(h, "calls", True))  # noqa: E731
    return rt is not None and (hook_set(rt.launch_enter_hook) or hook_set(rt.launch_exit_hook))


def _storage_span(t: torch.Tensor):
    s = t.untyped_storage()
    return s.data_ptr(), s.data_ptr() + s.nbytes()


class Replay:
    """Re-issues a Recording with new call tensors. Every tensor argument of the recorded launches must lie inside
    one of the named call tensors or the call's scratch buffers (then it is that tensor's replacement plus the same
    byte offset: M is part of the replay key, so offsets repeat), or inside one of `keep` (tensors that outlive the
    replay: the weight pieces), whose address is then fixed; anything else (a temporary the call derived from its
    inputs) makes build() return None. A host step's tensors must be whole named / scratch / keep tensors (a dtype
    view is allowed). Call tensors must keep the recorded alignment, since Triton specialized each kernel on 16-byte
    alignment of its pointers (the caller keys replays on it)."""

    __slots__ = ("steps", "scratch")

    @staticmethod
    def build(rec: Recording, named: dict, keep) -> "Replay | None":
        if not rec.ok or not rec.launches:
            return None
        spans = [(t.data_ptr(), t.data_ptr() + t.numel() * t.element_size(), n) for n, t in named.items()
                 if t is not None and t.numel()]
        spans += [(t.data_ptr(), t.data_ptr() + t.numel() * t.element_size(), i) for i, t in enumerate(rec.scratch)
                  if t.numel()]
        kept = [t for t in keep if isinstance(t, torch.Tensor) and t.numel()]
        fixed_spans = [_storage_span(t) for t in kept]

        def slot(p):  # (slot, byte offset) of a call / scratch tensor holding address p, or None
            return next(((s, p - lo) for lo, hi, s in spans if lo <= p < hi), None)

        steps = []
        for k, grid, args in rec.launches:
            fixed, slots = list(args), []
            for i, a in enumerate(args):
                if not isinstance(a, torch.Tensor):
                    continue
                if k is None:  # host step: a whole tensor, by identity of address, shape and dtype
                    hit = next((s for lo, hi, s in spans if lo == a.data_ptr() and hi - lo == a.nbytes), None)
                    if hit is not None:
                        slots.append((i, (hit, a.dtype)))
                    elif not any(a is t for t in kept):
                        return None
                    continue
                p = a.data_ptr()
                hit = slot(p)
                if hit is not None:
                    slots.append((i, hit))
                elif any(lo <= p < hi for lo, hi in fixed_spans):
                    fixed[i] = p
                else:
                    return None
            steps.append((k, grid, fixed, tuple(slots)))
        r = Replay()
        r.steps = steps
        r.scratch = [(tuple(t.shape), t.dtype, t.device) for t in rec.scratch]
        return r

    def __call__(self, stream: int, named: dict) -> list:
        """Launch on `stream` (a raw CUDA stream handle) with the call tensors `named` (name -> tensor or None);
        returns the fresh scratch tensors."""
        scr = [torch.empty(s, dtype=d, device=dev) for s, d, dev in self.scratch]
        tens = dict(named)
        tens.update(enumerate(scr))
        ptr = {n: (0 if t is None else t.data_ptr()) for n, t in tens.items()}
        for k, grid, fixed, slots in self.steps:
            a = list(fixed)
            if k is None:  # host step: grid is the function
                for i, (s, dtype) in slots:
                    a[i] = tens[s] if tens[s].dtype == dtype else tens[s].view(dtype)
                grid(*a)
                continue
            for i, (s, off) in slots:
                a[i] = ptr[s] + off
            k.run(grid[0], grid[1], grid[2], stream, k.function, k.packed_metadata, None, None, None, *a)
        return scr
