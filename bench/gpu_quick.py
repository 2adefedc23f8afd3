"""Quick GPU table through the public ops (the dispatch users get): fourbit.linear per format vs bf16 cuBLAS.

Method (shared/ANCHORS.md): median of triton.testing.do_bench (L2 flushed), random data, bf16 activations. Each
variant runs as a CUDA graph of R calls over R weight copies (R * bytes > L2) and the per-call time is replay / R,
which takes Python dispatch (tens of us per eager call) out of the kernel number; eager per-call time is shown too.
Writes JSON to $OUT/gpu_quick.json (or ./gpu_quick.json) and prints the table last.
"""
import json
import os
import sys

import torch
import triton

import fourbit
from fourbit.formats import PRESETS

dev = "cuda"
FORMATS = ("int4", "nf4", "nvfp4", "mxfp4")
SHAPES = [(4096, 4096), (8192, 8192)]
MS = (1, 16, 64, 256, 1024)


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def cuda_args(name, w):
    """The op arguments of weight w quantized (on the CPU) to preset `name`, tensors moved to the GPU."""
    qw = fourbit.quantize(w.float().cpu(), PRESETS[name])
    return tuple(t_.cuda() if isinstance(t_, torch.Tensor) else t_ for t_ in qw.op_args())


def weight_copies(args, R):
    """R copies of the op arguments (fresh tensors), so a graph of R calls reads more weight bytes than L2 holds."""
    return [tuple(t_.clone() if isinstance(t_, torch.Tensor) else t_ for t_ in args) for _ in range(R)]


def graph_time(fns, timer=None):
    """Per-call ms of fns captured back to back in one CUDA graph; timer(replay) -> ms of one replay (default:
    do_bench's median with the L2 flushed)."""
    for f in fns:
        f()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in fns:
            f()
    return (timer or bench)(g.replay) / len(fns)


def cli_list(flag, default, kind=str):
    """The comma list after flag on the command line (e.g. --ms 64,256), else default."""
    return [kind(v) for v in sys.argv[sys.argv.index(flag) + 1].split(",")] if flag in sys.argv else list(default)


def profile_cases(default, call):
    """--profile [N,K,M,format ...] (else `default`, a list of such tuples): one call(x, args, out) per case with
    bf16 x, a driver for ncu -k KERNEL (ncu replays each kernel itself, so no warm-up), then exit."""
    if "--profile" not in sys.argv:
        return
    cases = [a.split(",") for a in sys.argv[sys.argv.index("--profile") + 1:]] or default
    for N, K, M, name in [(int(a), int(b), int(c), d) for a, b, c, d in cases]:
        args = cuda_args(name, torch.randn(N, K))
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        call(x, args, torch.empty(M, N, device=dev, dtype=torch.bfloat16))
        torch.cuda.synchronize()
        print("profiled", N, K, M, name)
    sys.exit(0)


def compare(shapes, ms, fmts, tag, main_fn, others, takes=None):
    """One kernel against bf16 cuBLAS and other kernels (bench/gpu_rs.py, gpu_tc.py, gpu_sm.py), printed as a table.
    shapes: (N, K, R) with R weight copies a CUDA graph cycles through (more bytes than L2 holds); per M and format:
    main_fn(x, args, out) and each other, (label, pick) with pick(x, args) -> its fn(x, args, out) or None where it
    does not apply (nan then), all as per-call graph us; main's speed-up over bf16; MISMATCH where main's output
    differs from the first applicable other's by >= 2% of that output's max (a smoke check; the tests are the tests).
    takes(x, args): asserted first, where main_fn would otherwise route to another kernel."""
    print(torch.cuda.get_device_name())
    rows = []
    for N, K, R in shapes:
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
        ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) for _ in range(R)]
        qargs = {name: cuda_args(name, w) for name in fmts}  # quantized once per shape (on the CPU)
        for M in ms:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            line = [f"{N}x{K}", M, graph_time([lambda wi=wi: x @ wi.T for wi in ws]) * 1e3]
            for name in fmts:
                args, copies = qargs[name], weight_copies(qargs[name], R)
                assert takes is None or takes(x, args), (tag, name, M)
                out, ref = (torch.empty(M, N, device=dev, dtype=torch.bfloat16) for _ in range(2))
                times, rel = [graph_time([lambda a=a: main_fn(x, a, out) for a in copies]) * 1e3], None
                main_fn(x, args, out)
                for _, pick in others:
                    fn = pick(x, args)
                    times.append(float("nan") if fn is None else
                                 graph_time([lambda a=a: fn(x, a, ref) for a in copies]) * 1e3)
                    if fn is not None and rel is None:
                        fn(x, args, ref)
                        rel = (out.float() - ref.float()).abs().max().item() / \
                            max(ref.float().abs().max().item(), 1e-30)
                line.append((times, rel or 0.0))
            rows.append(line)
    cols = [tag] + [label for label, _ in others]
    print(f"{'shape':>11} {'M':>5} {'bf16':>7}" +
          "".join(f" {n + ' ' + cols[0]:>9}" + "".join(f" {c:>7}" for c in cols[1:]) + f" {'x bf16':>6}"
                  for n in fmts))
    for r in rows:
        s = f"{r[0]:>11} {r[1]:>5} {r[2]:7.1f}"
        for times, rel in r[3:]:
            s += f" {times[0]:9.1f}" + "".join(f" {t:7.1f}" for t in times[1:]) + f" {r[2] / times[0]:6.2f}" + \
                ("" if rel < 0.02 else f" MISMATCH {rel:.3g}")
        print(s)


def main():
    torch.manual_seed(0)
    n = 1 << 28
    a, b = torch.empty(n, dtype=torch.uint8, device=dev), torch.empty(n, dtype=torch.uint8, device=dev)
    copy_tbs = 2 * n / (bench(lambda: b.copy_(a)) * 1e-3) / 1e12
    rows = []
    for N, K in SHAPES:
        R = max(2, int(2 * 50e6 // (N * K // 2)) + 1)  # enough 4-bit copies to overflow the 50 MB L2
        ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) for _ in range(R)]
        qws = {f: [fourbit.quantize(w, PRESETS[f]) for w in ws] for f in FORMATS}
        for M in MS:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            t_bf16 = graph_time([lambda w=w: x @ w.T for w in ws])
            rows.append(dict(shape=f"{N}x{K}", M=M, kernel="bf16 cuBLAS", us=t_bf16 * 1e3, vs_bf16=1.0))
            for f in FORMATS:
                out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
                args = [q.op_args() for q in qws[f]]
                t = graph_time([lambda a=a_: torch.ops.fourbit.linear_out(x, *a, None, out) for a_ in args])
                eager = bench(lambda: fourbit.linear(x, qws[f][0]))
                nbytes = qws[f][0].nbytes
                rows.append(dict(shape=f"{N}x{K}", M=M, kernel=f, us=t * 1e3, eager_us=eager * 1e3,
                                 tbs=nbytes / (t * 1e-3) / 1e12, pct_copy=100 * nbytes / (t * 1e-3) / 1e12 / copy_tbs,
                                 tflops=2 * M * N * K / (t * 1e-3) / 1e12, vs_bf16=t_bf16 / t))
    meta = dict(card=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                copy_tbs=copy_tbs)
    path = os.path.join(os.environ.get("OUT", "."), "gpu_quick.json")
    with open(path, "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    print(f"\n{meta['card']}, torch {meta['torch']}, triton {meta['triton']}, copy {copy_tbs:.2f} TB/s")
    print(f"{'shape':>10} {'M':>5} {'kernel':>12} {'us':>9} {'eager us':>9} {'TB/s':>6} {'%copy':>6} {'TF/s':>7} "
          f"{'x bf16':>7}")
    for r in rows:
        print(f"{r['shape']:>10} {r['M']:>5} {r['kernel']:>12} {r['us']:9.1f} {r.get('eager_us', 0):9.1f} "
              f"{r.get('tbs', 0):6.2f} {r.get('pct_copy', 0):6.0f} {r.get('tflops', 0):7.1f} {r['vs_bf16']:7.2f}")


if __name__ == "__main__":
    main()
