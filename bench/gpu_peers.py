"""fourbit against every peer of shared/ANCHORS.md, side by side in one run on one GPU (the performance issue's bench).

Kernels: bf16 cuBLAS (x @ w.T), torch's int4 tinygemm g128, bitsandbytes NF4 b64 (double quant), gemlite int4 g128
(HQQ-style asymmetric), and fourbit int4 g128 / nf4 / nvfp4 / mxfp4 through the public op. Peers that cannot be
imported are reported as unavailable (carry them as shared/ANCHORS.md says: `.whl/` wheels, gemlite's source in
`.whl/pysrc`, PYTHONPATH set before running).
Method (ANCHORS.md): median of triton.testing.do_bench(fn, warmup=25, rep=100) (it flushes L2), random data, bf16
activations, plain eager calls as the anchors were measured; every kernel (fourbit, and since 2026-11-28 bf16 cuBLAS
and the peers) is also timed replayed from a CUDA graph over three rotating weight copies ("graph us"), the kernel
time a decode loop under graphs sees, so that graph times meet graph times (bench/benchmarks_md.py's ratios).
Also measured: the elementwise kernels (pack, unpack, quantize, dequantize) as bytes read + written per second
against the device-to-device copy, and the large-M crossover of the two GEMM strategies (fused Triton dequant +
tl.dot against dequantize-then-cuBLAS), both CUDA-graph timed, which sets ops/cuda.py's DEQUANT_MIN_M.
Writes $OUT/peers.json (or ./peers.json); `python3 bench/roofline.py peers.json` draws the roofline PNG.
Grid: every M of ANCHORS.md on 4096x4096 and 8192x8192; M = 1 and 16 on the three large decode shapes (the M = 1
bandwidth target's shapes), which keeps the whole run inside one 10-minute GPU call with build and tests.
"""
import json
import os
import sys
import time

import torch
import triton

import fourbit
from gpu_quick import graph_time  # bench/ is on sys.path when this script runs
from read_floor import read_fn

dev = "cuda"
GRID = [((4096, 4096), (1, 16, 64, 256, 1024, 4096)), ((8192, 8192), (1, 16, 64, 256, 1024, 4096)),
        ((28672, 8192), (1, 16)), ((4096, 14336), (1, 16)), ((14336, 4096), (1, 16))]
CROSS_MS = (128, 256, 512, 1024, 2048)
FOURBIT = ("int4", "nf4", "nvfp4", "mxfp4")
W4A8 = ("int4", "mxfp4")  # formats of the opt-in FP8-activation path


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def peer_tinygemm(w):
    """torch's int4 tinygemm, g128: returns (fn(x), weight + scale bytes)."""
    N, K = w.shape
    wg = w.float().reshape(N, K // 128, 128)
    mn, mx = wg.amin(-1), wg.amax(-1)
    s = ((mx - mn) / 15).clamp(min=1e-6)
    q = torch.round((wg - mn[..., None]) / s[..., None]).clamp(0, 15).to(torch.int32).reshape(N, K)
    packed = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)
    w4 = torch._convert_weight_to_int4pack(packed, 8)
    zero = mn + 8 * s  # tinygemm dequantizes (q - 8) * s + zero
    sz = torch.stack([s.t(), zero.t()], -1).to(torch.bfloat16).contiguous()  # [K/128, N, 2]
    return (lambda x: torch._weight_int4pack_mm(x, w4, 128, sz)), w4.numel() * w4.element_size() + sz.numel() * 2


def peer_bnb(w):
    import bitsandbytes as bnb  # noqa: PLC0415
    q, st = bnb.functional.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    nbytes = q.numel() + st.absmax.numel() + st.state2.absmax.numel() * 4
    return (lambda x: bnb.matmul_4bit(x, q.t(), quant_state=st)), nbytes


def peer_gemlite(w):
    from gemlite.helper import A16W4_HQQ_INT  # noqa: PLC0415
    N, K = w.shape
    wg = w.float().reshape(N, K // 128, 128)
    mn, mx = wg.amin(-1), wg.amax(-1)
    s = ((mx - mn) / 15).clamp(min=1e-6)
    z = -mn / s
    q = torch.round(wg / s[..., None] + z[..., None]).clamp(0, 15).to(torch.uint8).reshape(N, K)
    layer = A16W4_HQQ_INT(device=dev, dtype=torch.bfloat16).from_weights(q, s.to(torch.bfloat16),
                                                                          z.to(torch.bfloat16))
    return layer, N * K // 2 + 2 * 2 * N * K // 128


def rates(k, M, N, K, t_bf16):
    """Fill TB/s (weight + scale bytes), TF/s and the ratio to bf16 of one timed kernel entry."""
    k["tbs"] = k["bytes"] / (k["us"] * 1e-6) / 1e12
    k["tflops"] = 2 * M * N * K / (k["us"] * 1e-6) / 1e12
    k["vs_bf16"] = t_bf16 * 1e3 / k["us"]


def elementwise(copy_tbs):
    """pack / unpack / quantize / dequantize on 8192x8192: bytes read + written per second, % of copy."""
    N = K = 8192
    w = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02
    codes = torch.randint(0, 16, (N, K), device=dev, dtype=torch.uint8)
    packed = torch.ops.fourbit.pack_nibbles(codes)
    out = [("pack", lambda: torch.ops.fourbit.pack_nibbles(codes), N * K * 1.5),
           ("unpack", lambda: torch.ops.fourbit.unpack_nibbles(packed), N * K * 1.5)]
    for f in FOURBIT:
        qw = fourbit.quantize(w, f)
        out.append((f"quantize {f}", lambda f=f: fourbit.quantize(w, f), N * K * 2 + qw.nbytes))
        out.append((f"dequantize {f}", lambda qw=qw: fourbit.dequantize(qw, torch.bfloat16), N * K * 2 + qw.nbytes))
    res = []
    for name, fn, nbytes in out:
        # eager do_bench (op dispatch and Triton's host launch cost included) and a CUDA-graph replay of the same
        # call (the kernels alone), as the linear rows report both
        t, tg = bench(fn) * 1e-3, graph_time([fn]) * 1e-3
        res.append(dict(kernel=name, us=t * 1e6, graph_us=tg * 1e6, tbs=nbytes / t / 1e12,
                        pct_copy=100 * nbytes / t / 1e12 / copy_tbs, graph_pct_copy=100 * nbytes / tg / 1e12 / copy_tbs))
    return res


def crossover():
    """Per-call us (CUDA graph) of the fused Triton GEMM and of dequantize + cuBLAS at the large-M sizes."""
    from fourbit import kernels  # noqa: PLC0415
    res = []
    for N, K in ((4096, 4096), (8192, 8192)):
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02
        for f in FOURBIT:
            qw = fourbit.quantize(w, f)
            a = qw.op_args()
            for M in CROSS_MS:
                x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
                y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
                fused = graph_time([lambda: kernels.linear(x, *a, None, out=y)])
                deq = graph_time([lambda: torch.mm(x, kernels.dequantize(*a, torch.bfloat16).t(), out=y)])
                res.append(dict(shape=f"{N}x{K}", format=f, M=M, fused_us=fused * 1e3, dequant_mm_us=deq * 1e3))
    return res


def main():
    torch.manual_seed(0)
    n = 1 << 28
    a, b = torch.empty(n, dtype=torch.uint8, device=dev), torch.empty(n, dtype=torch.uint8, device=dev)
    copy_tbs = 2 * n / (bench(lambda: b.copy_(a)) * 1e-3) / 1e12
    del a, b
    rows, unavailable = [], {}
    for (N, K), ms in GRID:
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02
        # three weight copies for every kernel's graph time (3 calls a replay, each reading its own weight)
        wcs = [w] + [torch.randn_like(w) * 0.02 for _ in range(2)]
        peers = {}  # name -> ([fn(x) for each weight copy], bytes)
        for name, make in (("tinygemm int4", peer_tinygemm), ("bnb nf4", peer_bnb), ("gemlite int4", peer_gemlite)):
            try:
                made = [make(wc) for wc in wcs]
                peers[name] = ([m[0] for m in made], made[0][1])
            except Exception as e:  # noqa: BLE001 - a missing or failing peer is reported, not fatal
                unavailable[name] = f"{type(e).__name__}: {e}"[:200]
        qws = {f: fourbit.quantize(w, f) for f in FOURBIT}
        copies = {f: [fourbit.quantize(wc, f) for wc in wcs[1:]] for f in FOURBIT}
        for M in ms:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            t_bf16 = bench(lambda: x @ w.T)
            yb = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            g_bf16 = graph_time([lambda w_=w_: torch.mm(x, w_.t(), out=yb) for w_ in wcs])
            row = dict(shape=f"{N}x{K}", M=M, kernels={"bf16 cuBLAS": dict(us=t_bf16 * 1e3, graph_us=g_bf16 * 1e3,
                                                                             bytes=N * K * 2)})
            for name, (fns, nbytes) in peers.items():
                try:
                    row["kernels"][name] = dict(us=bench(lambda: fns[0](x)) * 1e3, bytes=nbytes)
                except Exception as e:  # noqa: BLE001
                    unavailable[f"{name} M={M}"] = f"{type(e).__name__}: {e}"[:200]
                    continue
                try:  # the peers from a graph too, as fourbit: graph ratios compare graph with graph
                    row["kernels"][name]["graph_us"] = graph_time([lambda f=f: f(x) for f in fns]) * 1e3
                except Exception as e:  # noqa: BLE001
                    unavailable[f"{name} graph M={M}"] = f"{type(e).__name__}: {e}"[:200]
            for f, qw in qws.items():
                out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
                cs = [q.op_args() for q in [qw] + copies[f]]
                g = graph_time([lambda a_=a_: torch.ops.fourbit.linear_out(x, *a_, None, out) for a_ in cs])
                row["kernels"][f"fourbit {f}"] = dict(us=bench(lambda: fourbit.linear(x, qw)) * 1e3,
                                                      graph_us=g * 1e3, bytes=qw.nbytes)
            if M >= 256:  # the opt-in W4A8 path and FP8 cuBLAS (row-wise scales) as its reference point
                for f in W4A8:
                    qw = qws[f]
                    e8 = dict(us=bench(lambda: fourbit.linear(x, qw, act="fp8_e4m3")) * 1e3, bytes=qw.nbytes)
                    try:  # the graph replay too: the eager W4A8 times carried the host (208 / 286 / 98 us, one case)
                        e8["graph_us"] = graph_time([lambda q=q: fourbit.linear(x, q, act="fp8_e4m3")
                                                     for q in [qw] + copies[f]]) * 1e3
                    except Exception as e:  # noqa: BLE001
                        unavailable[f"fourbit {f}+fp8 graph M={M}"] = f"{type(e).__name__}: {e}"[:200]
                    row["kernels"][f"fourbit {f}+fp8"] = e8
                x8, w8 = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
                sx = torch.ones(M, 1, device=dev, dtype=torch.float32)
                sw = torch.ones(1, N, device=dev, dtype=torch.float32)
                row["kernels"]["fp8 _scaled_mm"] = dict(
                    us=bench(lambda: torch._scaled_mm(x8, w8.t(), sx, sw, out_dtype=torch.bfloat16)) * 1e3,
                    bytes=N * K)
            for k in row["kernels"].values():
                rates(k, M, N, K, t_bf16)
            best_peer = min((v["us"] for k_, v in row["kernels"].items()
                             if not k_.startswith(("fourbit", "bf16", "fp8"))), default=None)
            for k_, v in row["kernels"].items():
                if k_.startswith("fourbit") and best_peer:
                    v["vs_best_peer"] = best_peer / v["us"]
            if M == 1:  # the method's floor for the M = 1 targets: a plain read of the codes (bench/read_floor.py)
                codes = torch.randint(-2**31, 2**31 - 1, (N * K // 8,), device=dev, dtype=torch.int32)
                rd = read_fn(codes)  # the CUDA read of bench/read_floor.cu where nvcc builds it, else the Triton one
                row["read_floor"] = dict(us=bench(rd) * 1e3, bytes=N * K // 2, kernel=rd.kind)
                del codes
            rows.append(row)
        del w, wcs, peers, qws, copies
        torch.cuda.empty_cache()
    elem = elementwise(copy_tbs)
    cross = crossover()
    meta = dict(card=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                copy_tbs=copy_tbs, unavailable=unavailable, argv=sys.argv,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    path = os.path.join(os.environ.get("OUT", "."), "peers.json")
    with open(path, "w") as fh:
        json.dump(dict(meta=meta, rows=rows, elementwise=elem, crossover=cross), fh, indent=1)
    print("\nlarge-M crossover (CUDA graph us): fused Triton GEMM vs dequantize + cuBLAS")
    for c in cross:
        print(f"{c['shape']:>10} {c['format']:>6} M={c['M']:<5} fused {c['fused_us']:8.1f}  "
              f"dequant+mm {c['dequant_mm_us']:8.1f}")
    print("\nelementwise, 8192x8192 (bytes read + written)")
    for e in elem:
        print(f"{e['kernel']:>18} {e['us']:8.1f} us {e['tbs']:6.2f} TB/s {e['pct_copy']:5.0f}% of copy; graph "
              f"{e['graph_us']:8.1f} us {e['graph_pct_copy']:5.0f}%")
    print(f"\n{meta['card']}, torch {meta['torch']}, triton {meta['triton']}, copy {copy_tbs:.2f} TB/s; "
          f"unavailable: {sorted(unavailable) or 'none'}")
    print(f"{'shape':>11} {'M':>5} {'kernel':>15} {'us':>9} {'graph us':>9} {'TB/s':>6} {'TF/s':>7} {'x bf16':>7} "
          f"{'x peer':>7}")
    for r in rows:
        for k, v in r["kernels"].items():
            print(f"{r['shape']:>11} {r['M']:>5} {k:>15} {v['us']:9.1f} {v.get('graph_us', 0):9.1f} {v['tbs']:6.2f} "
                  f"{v['tflops']:7.1f} {v['vs_bf16']:7.2f} {v.get('vs_best_peer', 0):7.2f}")


if __name__ == "__main__":
    main()
