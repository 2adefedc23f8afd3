"""Tile-config sweep for the fused Triton GEMM (kernels/gemm.py), one GPU call: compile every variant in parallel
worker processes (they fill Triton's on-disk cache), check each against x @ bf16(dequant(W))^T, then time each with
CUDA-graph replays over enough weight copies to overflow L2 (as bench/gpu_quick.py), next to bf16 cuBLAS.

Usage: python3 bench/gemm_tune.py [quick]   (JSON to $OUT/gemm_tune.json; the table is printed last)
"""
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp

import torch
import triton

from gpu_quick import graph_time  # bench/ is on sys.path when this script runs

FORMATS = ("int4", "nf4", "nvfp4", "mxfp4")
# (N, K, M) -> configs (BM, BN, BK, SWAP, warps, stages) to try
CASES = {
    (4096, 4096, 64): [(64, 128, 64, 1, 4, 4), (64, 64, 128, 1, 4, 4), (64, 128, 128, 1, 4, 3), (64, 64, 64, 0, 4, 4),
                       (64, 128, 64, 0, 4, 4), (64, 64, 64, 1, 4, 4)],
    (8192, 8192, 256): [(128, 128, 64, 0, 8, 3), (128, 256, 64, 0, 8, 3), (128, 128, 64, 1, 8, 3),
                        (64, 128, 64, 0, 4, 4), (256, 128, 64, 1, 8, 3), (64, 128, 64, 1, 4, 4)],
    (8192, 8192, 1024): [(128, 256, 64, 0, 8, 3), (128, 128, 64, 0, 8, 3), (128, 128, 128, 0, 8, 3),
                         (128, 256, 64, 1, 8, 3), (256, 128, 64, 1, 8, 3), (128, 128, 64, 0, 8, 4)],
}
LUT_MODES = {"nf4": (0, 1)}


def variants():
    out = []
    for cfgs in CASES.values():
        for c in cfgs:
            for f in FORMATS:
                for lm in LUT_MODES.get(f, (0,)):
                    out.append((f, c, lm))
    return list(dict.fromkeys(out))


def _weights(f, N, K, n=1, seed=0):
    import fourbit
    from fourbit.formats import PRESETS
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [fourbit.quantize(torch.randn(N, K, device="cuda", dtype=torch.bfloat16, generator=g), PRESETS[f])
            for _ in range(n)]


def _compile(batch):
    """Worker: run each variant once on a small problem (same specializations as the timed shapes)."""
    from fourbit.kernels import gemm
    res = []
    qs = {}
    x = torch.randn(100, 1024, device="cuda", dtype=torch.bfloat16)
    for f, c, lm in batch:
        t = time.time()
        try:
            if f not in qs:
                qs[f] = _weights(f, 256, 1024)[0].op_args()
            y = torch.empty(100, 256, device="cuda", dtype=torch.bfloat16)
            gemm.launch(x, *qs[f], None, y, config=c, lut_mode=lm)
            torch.cuda.synchronize()
            res.append((f, c, lm, time.time() - t, None))
        except Exception as e:  # noqa: BLE001
            res.append((f, c, lm, time.time() - t, f"{type(e).__name__}: {str(e)[:300]}"))
    return res


def main():
    from fourbit.kernels import gemm
    out_dir = os.environ.get("OUT", ".")
    vs = variants()
    t0 = time.time()
    nw = min(14, os.cpu_count() or 4)
    batches = [vs[i::nw] for i in range(nw)]
    failed = {}
    with ProcessPoolExecutor(nw, mp_context=mp.get_context("spawn")) as ex:
        for res in ex.map(_compile, batches):
            for f, c, lm, dt, err in res:
                if err:
                    failed[(f, c, lm)] = err
                    print("COMPILE FAIL", f, c, lm, err, flush=True)
    print(f"compiled {len(vs)} variants in {time.time() - t0:.0f}s, {len(failed)} failed", flush=True)

    # correctness of every variant on an odd shape (clamped rows, several N tiles)
    bad = {}
    x = torch.randn(100, 1024, device="cuda", dtype=torch.bfloat16)
    for f in FORMATS:
        qw = _weights(f, 300, 1024, seed=1)[0]
        a = qw.op_args()
        w = qw.dequantize().to("cuda").float().bfloat16().float()
        ref = x.float() @ w.T
        for f2, c, lm in vs:
            if f2 != f or (f, c, lm) in failed:
                continue
            y = torch.full((100, 300), float("nan"), device="cuda", dtype=torch.bfloat16)
            gemm.launch(x, *a, None, y, config=c, lut_mode=lm)
            err = ((y.float() - ref).norm() / ref.norm()).item()
            if not err < 5e-3:
                bad[(f, c, lm)] = err
                print("WRONG", f, c, lm, err, flush=True)
    print(f"checked, {len(bad)} wrong", flush=True)

    rows = []
    for (N, K, M), cfgs in CASES.items():
        R = max(2, int(2 * 50e6 // (N * K // 2)) + 1)
        ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) for _ in range(R)]
        xm = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        t_bf = graph_time([lambda w=w: xm @ w.T for w in ws])
        rows.append(dict(N=N, K=K, M=M, fmt="bf16", cfg=None, lm=None, us=t_bf * 1e3))
        del ws
        for f in FORMATS:
            qs = [q.op_args() for q in _weights(f, N, K, R, seed=2)]
            y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
            for c in cfgs:
                for lm in LUT_MODES.get(f, (0,)):
                    if (f, c, lm) in failed or (f, c, lm) in bad:
                        continue
                    t = graph_time([lambda a=a: gemm.launch(xm, *a, None, y, config=c, lut_mode=lm) for a in qs])
                    rows.append(dict(N=N, K=K, M=M, fmt=f, cfg=c, lm=lm, us=t * 1e3, x_bf16=t_bf / t,
                                     tflops=2 * M * N * K / (t * 1e-3) / 1e12))
            del qs
        torch.cuda.empty_cache()
    with open(os.path.join(out_dir, "gemm_tune.json"), "w") as fh:
        json.dump(dict(card=torch.cuda.get_device_name(), triton=triton.__version__, rows=rows,
                       failed={str(k): v for k, v in failed.items()}, bad={str(k): v for k, v in bad.items()}),
                  fh, indent=1)
    print(f"\n{torch.cuda.get_device_name()}, triton {triton.__version__}; total {time.time() - t0:.0f}s")
    for r in rows:
        print(f"{r['N']}x{r['K']} M={r['M']:5d} {r['fmt']:6s} {str(r['cfg']):26s} lm={r['lm']} {r['us']:9.1f} us"
              + (f"  {r['x_bf16']:.2f}x bf16 {r['tflops']:6.1f} TF/s" if r['cfg'] else ""))


if __name__ == "__main__":
    main()
