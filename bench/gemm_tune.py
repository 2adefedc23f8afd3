"""Tile-config sweep for the fused Triton GEMM (kernels/gemm.py), one GPU call: compile every kernel variant in
parallel worker processes (they fill Triton's on-disk cache), check each against x @ bf16(dequant(W))^T, then time
every (block config, split-K) pair next to bf16 cuBLAS in the same process.

Timing: each variant is captured as one CUDA graph of R calls over R weight copies (R * 4-bit bytes > 2x the 50 MB
L2, so weights come from HBM as in a model; x stays cached, as for cuBLAS, which is timed the same way over R bf16
copies); per-call time = median over REPS replays (CUDA events) / R. Split-K calls include the workspace allocation
(graph pool) and the reduce kernel.

Usage: python3 bench/gemm_tune.py [quick]   (JSON to $OUT/gemm_tune.json after every shape; table printed last)
"""
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp

import torch
import triton

from gpu_quick import graph_time  # bench/ is on sys.path when this script runs

FORMATS = ("int4", "nf4", "nvfp4", "mxfp4")
SHAPES = [(8192, 8192), (4096, 4096), (28672, 8192), (4096, 14336), (14336, 4096)]
MS = (32, 64, 128, 256)
# M -> block configs (BM, BN, BK, SWAP, warps, stages); each is timed with every useful split-K factor
BLOCKS = {
    32: [(32, 64, 128, 1, 4, 3), (32, 64, 128, 1, 4, 4), (32, 64, 64, 1, 4, 3), (32, 64, 128, 1, 4, 2),
         (32, 64, 64, 1, 4, 4)],
    64: [(64, 64, 128, 1, 4, 4), (64, 64, 64, 1, 4, 4), (64, 64, 128, 1, 4, 3), (64, 64, 64, 1, 4, 3),
         (64, 64, 128, 1, 4, 2)],
    128: [(128, 64, 128, 1, 4, 3), (128, 64, 64, 1, 4, 3), (128, 64, 64, 1, 4, 4), (128, 64, 128, 1, 4, 2),
          (64, 64, 128, 1, 4, 3)],
    256: [(256, 128, 64, 1, 8, 3), (128, 64, 128, 1, 4, 3), (128, 64, 64, 1, 4, 3), (256, 128, 64, 1, 8, 2)],
}
SPLITS = (1, 2, 4, 8, 16)
LUT_MODES = {"nf4": (0, 2)}  # 1 (L1 gather) lost everywhere in the first sweep
REPS = 15
SMS = 132


def splits_for(N, K, M, c):
    tiles = triton.cdiv(M, c[0]) * triton.cdiv(N, c[1])
    nt = K // c[2]
    return [s for s in SPLITS if s == 1 or (tiles * s <= 16 * SMS and nt // s >= 2)]


def kernel_variants():
    """(fmt, block cfg, lut_mode, split>1) combos that compile to distinct kernels."""
    out = []
    for cs in BLOCKS.values():
        for c in cs:
            for f in FORMATS:
                for lm in LUT_MODES.get(f, (0,)):
                    for sp in (1, 2):
                        out.append((f, c, lm, sp))
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
    for f, c, lm, sp in batch:
        t = time.time()
        try:
            if f not in qs:
                qs[f] = _weights(f, 256, 1024)[0].op_args()
            y = torch.empty(100, 256, device="cuda", dtype=torch.bfloat16)
            gemm.launch(x, *qs[f], None, y, config=c, lut_mode=lm, split_k=sp)
            torch.cuda.synchronize()
            res.append((f, c, lm, sp, time.time() - t, None))
        except Exception as e:  # noqa: BLE001
            res.append((f, c, lm, sp, time.time() - t, f"{type(e).__name__}: {str(e)[:300]}"))
    return res


def _median_replay(replay):
    """ms of one replay: median of REPS timed with CUDA events (no cache flush: fast enough for wide sweeps)."""
    replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(REPS):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        replay()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    return statistics.median(ts)


def gtime(fns):
    """Per-call ms of fns captured back to back in one CUDA graph: median of REPS replays."""
    return graph_time(fns, _median_replay)


def main():
    from fourbit.kernels import gemm
    global SHAPES, MS
    if len(sys.argv) > 1 and sys.argv[1] == "quick":
        SHAPES, MS = SHAPES[:2], (64,)
    out_dir = os.environ.get("OUT", ".")
    vs = kernel_variants()
    t0 = time.time()
    nw = min(14, os.cpu_count() or 4)
    failed = {}
    with ProcessPoolExecutor(nw, mp_context=mp.get_context("spawn")) as ex:
        for res in ex.map(_compile, [vs[i::nw] for i in range(nw)]):
            for f, c, lm, sp, dt, err in res:
                if err:
                    failed[(f, c, lm)] = err
                    print("COMPILE FAIL", f, c, lm, sp, err, flush=True)
    print(f"compiled {len(vs)} variants in {time.time() - t0:.0f}s, {len(failed)} failed", flush=True)

    bad = {}  # correctness of every variant on an odd shape (clamped rows, several N tiles, uneven splits)
    x = torch.randn(100, 1024, device="cuda", dtype=torch.bfloat16)
    for f in FORMATS:
        qw = _weights(f, 304, 1024, seed=1)[0]  # N % 16 == 0: same kernels as compiled
        a = qw.op_args()
        ref = x.float() @ qw.dequantize().to("cuda").float().bfloat16().float().T
        for f2, c, lm, sp in vs:
            if f2 != f or (f, c, lm) in failed:
                continue
            for s in ((1,) if sp == 1 else (3, 5)):
                y = torch.full((100, 304), float("nan"), device="cuda", dtype=torch.bfloat16)
                gemm.launch(x, *a, None, y, config=c, lut_mode=lm, split_k=s)
                err = ((y.float() - ref).norm() / ref.norm()).item()
                if not err < 5e-3:
                    bad[(f, c, lm)] = err
                    print("WRONG", f, c, lm, s, err, flush=True)
    print(f"checked, {len(bad)} wrong; {time.time() - t0:.0f}s", flush=True)
    while os.environ.get("WAIT_FILE") and not os.path.exists(os.environ["WAIT_FILE"]) and time.time() - t0 < 170:
        time.sleep(1)  # let a concurrent test run finish before timing

    rows = []
    budget = float(os.environ.get("TUNE_BUDGET_S", "1e9"))
    for N, K in SHAPES:
        if time.time() - t0 > budget:
            print(f"budget: skipped {N}x{K}", flush=True)
            continue
        R = max(2, int(2 * 50e6 // (N * K // 2)) + 1)
        ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) for _ in range(R)]
        xs = {M: torch.randn(M, K, device="cuda", dtype=torch.bfloat16) for M in MS}
        t_bf = {}
        for M in MS:
            t_bf[M] = gtime([lambda w=w: xs[M] @ w.T for w in ws])
            rows.append(dict(N=N, K=K, M=M, fmt="bf16", cfg=None, lm=None, split=None, us=t_bf[M] * 1e3))
        del ws
        torch.cuda.empty_cache()
        for f in FORMATS:
            qs = [q.op_args() for q in _weights(f, N, K, R, seed=2)]
            for M in MS:
                y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
                for c in BLOCKS[M]:
                    for lm in LUT_MODES.get(f, (0,)):
                        if (f, c, lm) in failed or (f, c, lm) in bad:
                            continue
                        for s in splits_for(N, K, M, c):
                            t = gtime([lambda a=a: gemm.launch(xs[M], *a, None, y, config=c, lut_mode=lm, split_k=s)
                                       for a in qs])
                            rows.append(dict(N=N, K=K, M=M, fmt=f, cfg=c, lm=lm, split=s, us=t * 1e3,
                                             x_bf16=t_bf[M] / t))
            del qs
            torch.cuda.empty_cache()
        print(f"{N}x{K} done, {time.time() - t0:.0f}s", flush=True)
        with open(os.path.join(out_dir, "gemm_tune.json"), "w") as fh:
            json.dump(dict(card=torch.cuda.get_device_name(), triton=triton.__version__, rows=rows,
                           failed={str(k): v for k, v in failed.items()}, bad={str(k): v for k, v in bad.items()}),
                      fh)
    print(f"\n{torch.cuda.get_device_name()}, triton {triton.__version__}; total {time.time() - t0:.0f}s")
    print("shape M: bf16 us | per format: best us (x bf16) cfg/lm/split ; best split=1 us")
    for N, K in SHAPES:
        for M in MS:
            if not any(r["N"] == N and r["K"] == K for r in rows):
                continue
            sel = [r for r in rows if r["N"] == N and r["K"] == K and r["M"] == M]
            bf = next(r["us"] for r in sel if r["fmt"] == "bf16")
            parts = []
            for f in FORMATS:
                fr = [r for r in sel if r["fmt"] == f]
                if not fr:
                    continue
                b = min(fr, key=lambda r: r["us"])
                o = [r["us"] for r in fr if r["split"] == 1]
                c = b["cfg"]
                parts.append(f"{f} {b['us']:.1f}({bf / b['us']:.2f}) {c[0]},{c[1]},{c[2]},{c[3]},{c[4]},{c[5]}/"
                             f"{b['lm']}/{b['split']} s1 {min(o):.1f}")
            print(f"{N}x{K} {M}: {bf:.1f} | " + " | ".join(parts))


if __name__ == "__main__":
    main()
