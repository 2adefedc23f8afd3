"""16 < M <= 256 table (the split-K issue's targets): the public op (torch.ops.fourbit.linear_out, autotuned as users
get it) per format, the pre-split-K kernel (bench/_gemm_before.py, same run) and bf16 cuBLAS, on five model shapes.

Method as bench/gpu_quick.py (GPU_CHECK.md): per call = median of triton.testing.do_bench over a CUDA graph of R
calls on R weight copies (R * 4-bit bytes > 2x L2, so weights stream from HBM; L2 also flushed by do_bench), bf16
activations, random data. Kernels are compiled first in parallel worker processes (fills Triton's disk cache).
Writes $OUT/gemm_small_m.json after every shape; prints the table last. TABLE_BUDGET_S skips shapes past it.
"""
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_quick import graph_time  # noqa: E402
from gemm_tune import _weights  # noqa: E402

FORMATS = ("int4", "nf4", "nvfp4", "mxfp4")
SHAPES = [(8192, 8192), (4096, 4096), (28672, 8192), (4096, 14336), (14336, 4096)]
MS = (32, 64, 128, 256)


def _compile(jobs):
    from fourbit.kernels import gemm
    import _gemm_before as old
    x = torch.randn(256, 1024, device="cuda", dtype=torch.bfloat16)
    errs = []
    for f, which, cfg, sp in jobs:
        a = _weights(f, 256, 1024)[0].op_args()
        y = torch.empty(256, 256, device="cuda", dtype=torch.bfloat16)
        try:
            if which == "new":
                gemm.launch(x, *a, None, y, config=cfg, split_k=sp)
            else:
                old.launch(x, *a, None, y, config=cfg[:6], lut_mode=cfg[6])
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            errs.append(f"{f} {which} {cfg} {sp}: {type(e).__name__}: {str(e)[:200]}")
    return errs


def main():
    from fourbit.kernels import gemm
    import _gemm_before as old
    t0 = time.time()
    budget = float(os.environ.get("TABLE_BUDGET_S", "1e9"))
    jobs = []
    for f in FORMATS:
        for M in MS:
            for c in gemm._bucket_space(M):
                for sp in (1, 2):
                    jobs.append((f, "new", c, sp))
            for c in old._bucket_space(M):
                if c[6] == 0 or f == "nf4":
                    jobs.append((f, "old", c, 1))
    jobs = list(dict.fromkeys(jobs))
    nw = min(14, os.cpu_count() or 4)
    with ProcessPoolExecutor(nw, mp_context=mp.get_context("spawn")) as ex:
        errs = [e for r in ex.map(_compile, [jobs[i::nw] for i in range(nw)]) for e in r]
    print(f"compiled {len(jobs)} jobs in {time.time() - t0:.0f}s; errors: {errs}", flush=True)
    rows = []
    out = os.path.join(os.environ.get("OUT", "."), "gemm_small_m.json")
    for N, K in SHAPES:
        if time.time() - t0 > budget:
            print(f"budget: skipped {N}x{K}", flush=True)
            continue
        R = max(2, int(2 * 50e6 // (N * K // 2)) + 1)
        ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) for _ in range(R)]
        xs = {M: torch.randn(M, K, device="cuda", dtype=torch.bfloat16) for M in MS}
        bf = {M: graph_time([lambda w=w: xs[M] @ w.T for w in ws]) * 1e3 for M in MS}
        del ws
        torch.cuda.empty_cache()
        for f in FORMATS:
            qs = [q.op_args() for q in _weights(f, N, K, R, seed=2)]
            for M in MS:
                y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
                t_new = graph_time([lambda a=a: torch.ops.fourbit.linear_out(xs[M], *a, None, y) for a in qs]) * 1e3
                t_old = graph_time([lambda a=a: old.launch(xs[M], *a, None, y) for a in qs]) * 1e3
                key = min(triton.next_power_of_2(M), 4096)
                pick = [v for k, v in gemm._best.items() if k[1] == key and k[2] == N and k[3] == K
                        and k[9] == gemm.code_kind(qs[0][4])]
                rows.append(dict(N=N, K=K, M=M, fmt=f, bf16_us=bf[M], before_us=t_old, after_us=t_new,
                                 before_x=bf[M] / t_old, after_x=bf[M] / t_new, pick=str(pick[:1])))
            del qs
            torch.cuda.empty_cache()
        with open(out, "w") as fh:
            json.dump(dict(card=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                           rows=rows), fh, indent=1)
        print(f"{N}x{K} done {time.time() - t0:.0f}s", flush=True)
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__} "
          "(us per call; x = bf16 cuBLAS time / kernel time)")
    for r in rows:
        print(f"{r['N']}x{r['K']} M={r['M']:3d} {r['fmt']:5s} bf16 {r['bf16_us']:6.1f} | before {r['before_us']:6.1f} "
              f"({r['before_x']:.2f}x) | after {r['after_us']:6.1f} ({r['after_x']:.2f}x) {r['pick']}")


if __name__ == "__main__":
    main()
