"""Quick GPU table through the public ops (the dispatch users get): fourbit.linear per format vs bf16 cuBLAS.

Method (shared/ANCHORS.md): median of triton.testing.do_bench (L2 flushed), random data, bf16 activations. Each
variant runs as a CUDA graph of R calls over R weight copies (R * bytes > L2) and the per-call time is replay / R,
which takes Python dispatch (tens of us per eager call) out of the kernel number; eager per-call time is shown too.
Writes JSON to $OUT/gpu_quick.json (or ./gpu_quick.json) and prints the table last.
"""
import json
import os

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
