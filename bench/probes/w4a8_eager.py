"""Eager W4A8 calls (fourbit.linear(x, qw, act="fp8_e4m3")): where an eager call's time goes beside its kernels.
For each case: whether the eager replay (fourbit.ops.eager) was stored for this M, the host time of one call (Python
only, the GPU kept busy), do_bench eager with the L2 flushed, and the op from a CUDA graph (no host time); W4A16
beside it as the control. BENCHMARKS.md's W4A8 4096^2 M = 1024 eager column read 58.7-252.9 us against ~55 us from a
graph over the same weights: this says which part is the host.
Usage (GPU machine): python3 bench/probes/w4a8_eager.py [--shapes NxKxM,...] [--profile | --pieces]; --pieces:
the host time of each piece of a call."""
import cProfile
import os
import pstats
import sys
import time

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fourbit  # noqa: E402
from gpu_quick import cli_list, graph_time  # noqa: E402

SHAPES = ["4096x4096x256", "4096x4096x1024", "4096x4096x2048", "8192x8192x1024"]


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3


def host_us(fn, n=50):
    """Host us a call with the GPU queue kept full (a long sleep kernel first, so no call waits on the GPU)."""
    fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(int(4e8))  # ~0.2 s of GPU time: every call below is enqueued behind it
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    return t


def use_recorded(plan, x):
    """Replace the plan's replays with the recorded launches of one call (kernels._launch.Replay), as before the
    prepared native call (fourbit.ops.eager, 2026-11-28)."""
    from fourbit.kernels import _launch as L
    from fourbit.ops import w4a8
    M, K = x.shape
    out = torch.empty(M, plan.N, dtype=x.dtype, device=x.device)
    with L.recording() as rec:
        w4a8.linear_into(x, *plan.args, None, out)
    for k in list(plan.replays):
        plan.replays[k] = ("replay", L.Replay.build(rec, {"x": x, "out": out, "bias": None}, plan.args[:3]))


def pieces():
    """Host us of each piece of a replayed W4A8 call (min / median of 5 rounds of 100 calls, GPU queue kept full)."""
    from fourbit.kernels import w4a8 as kw
    from fourbit.ops import _native_cuda as nc
    from fourbit.ops import w4a8
    dev = "cuda"
    for N, K, M in [tuple(int(v) for v in s.split("x")) for s in cli_list("--shapes", SHAPES)]:
        w = torch.randn(N, K, device=dev) * 0.02
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        for f in ("int4", "mxfp4"):
            qw = fourbit.quantize(w, f)
            qd, sc, z, fmt, G = w4a8.w4a8_args(qw)
            z = z if z.numel() else None
            perm = kw.PERM_MXFP4 if f == "mxfp4" else kw.PERM_INT4
            x8 = torch.empty(M, K, dtype=torch.uint8, device=dev)
            s = torch.empty(M, dtype=torch.float32, device=dev)
            y = torch.empty(M, N, dtype=torch.bfloat16, device=dev)
            x8f = x8.view(torch.float8_e4m3fn)
            cases = {
                "3x torch.empty": lambda: (torch.empty(M, K, dtype=torch.uint8, device=dev),
                                           torch.empty(M, dtype=torch.float32, device=dev),
                                           torch.empty(M, N, dtype=torch.bfloat16, device=dev)),
                "stream": lambda: nc._stream(x.device),
                "act": lambda: nc.act_quantize_e4m3(x, x8, s, perm),
                "gemm": lambda: nc.w4a8_linear_out(x8f, s, qd, sc, z, G, None, y, False),
                "gemm pdl": lambda: nc.w4a8_linear_out(x8f, s, qd, sc, z, G, None, y, True),
                "w4a8 workspace q": lambda: nc._lib().cuda_linear_w4a8_workspace(M, N, K),
                "fourbit.linear fp8": lambda: fourbit.linear(x, qw, act="fp8_e4m3"),
                "fourbit.linear bf16": lambda: fourbit.linear(x, qw),
            }
            for name, fn in cases.items():
                ts = sorted(host_us(fn, 100) for _ in range(5))
                print(f"{N}x{K} M={M} {f:6s} {name:22s} min {ts[0]:7.1f} med {ts[2]:7.1f} us", flush=True)


def main():
    if "--pieces" in sys.argv:
        return pieces()
    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    rows = []
    for N, K, M in [tuple(int(v) for v in s.split("x")) for s in cli_list("--shapes", SHAPES)]:
        w = torch.randn(N, K, device=dev) * 0.02
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        for f in ("int4", "mxfp4"):
            qw = fourbit.quantize(w, f)
            for act in ("bf16", "fp8_e4m3", "fp8 recorded"):
                mode = "bf16" if act == "bf16" else "fp8_e4m3"
                call = lambda: fourbit.linear(x, qw, act=mode)  # noqa: E731
                call()
                call()
                key = "_fourbit_w4a8_plan" if act != "bf16" else "_fourbit_plan"
                plan = qw.__dict__.get(key)
                if act == "fp8 recorded":  # the replay before the prepared native call: recorded launches
                    use_recorded(plan[1], x)
                kinds = None if plan is None else ",".join(str(v[0]) for v in plan[1].replays.values())
                r = dict(case=f"{N}x{K} M={M} {f} {act}", replays=kinds, host=host_us(call), eager=bench(call),
                         graph=graph_time([call], bench))
                rows.append(r)
                print(r, flush=True)
                if "--profile" in sys.argv and act != "bf16":
                    pr = cProfile.Profile()
                    pr.enable()
                    for _ in range(20):
                        call()
                    pr.disable()
                    torch.cuda.synchronize()
                    pstats.Stats(pr).sort_stats("cumulative").print_stats(12)
    print(f"\n{'case':40s} {'replays':>7s} {'host us':>8s} {'eager us':>9s} {'graph us':>9s}")
    for r in rows:
        print(f"{r['case']:40s} {str(r['replays']):>7s} {r['host']:8.1f} {r['eager']:9.1f} {r['graph']:9.1f}")


if __name__ == "__main__":
    main()
