"""BENCHMARKS.md from bench/gpu_peers.py's JSON:
  python3 bench/benchmarks_md.py peers.json [roofline.png [notes.md]] > BENCHMARKS.md

Tables: every kernel's median us per (shape, M) side by side, fourbit's ratios to bf16 cuBLAS and to the best peer,
the issue's targets checked one by one (met / missed, with the measured number), the elementwise kernels against the
copy bandwidth, and the GEMM-strategy crossover. Numbers are only those of the JSON: nothing is typed in by hand.
"""
import json
import sys

FB = ("int4", "nf4", "nvfp4", "mxfp4")
PEERS = ("tinygemm int4", "bnb nf4", "gemlite int4")
BIG = ("8192x8192", "28672x8192", "4096x14336", "14336x4096")  # >= 32 MB of 4-bit weights


def read_name(fl):  # the floor's label: which plain read timed it (JSON up to 2026-11-28 03:35 UTC names none: Triton)
    return f"plain read, {fl.get('kernel', 'triton')}"


def kt(v, graph=False):
    """An entry's time: the do_bench eager median (the anchors' method) or the CUDA-graph replay. A baseline (bf16
    cuBLAS, a peer) without a graph time (JSON before 2026-11-28 11:30 UTC) falls back to its eager time."""
    return v.get("graph_us", v["us"]) if graph else v["us"]


def best_peer(k, graph=False):  # the fastest peer's time of a row, by the same timing as the fourbit time it meets
    return min((kt(k[p], graph) for p in PEERS if p in k), default=None)


def main(path, png="roofline.png", notes=None):
    d = json.load(open(path))
    meta, rows = d["meta"], d["rows"]
    like = any("graph_us" in r["kernels"]["bf16 cuBLAS"] for r in rows)  # baselines timed from graphs too
    out = [f"# Benchmarks\n\nCard: **{meta['card']}**; torch {meta['torch']}, triton {meta['triton']}; measured "
           f"device-to-device copy {meta['copy_tbs']:.2f} TB/s. Date: {meta.get('date', 'see git log')}.\n",
           "Peers: torch's tinygemm (torch 2.11), bitsandbytes 0.50.2, gemlite 0.6.0.post2 (carried in `.whl/` as "
           "shared/ANCHORS.md says). Reproduce on the GPU machine: `bash scripts/gpu_check.sh bench` (bench/gpu_peers.py, "
           "then bench/roofline.py and this script).\n",
           "Method: median of `triton.testing.do_bench(fn, warmup=25, rep=100)` (L2 flushed before each call), "
           "random data, bf16 activations, eager calls for every kernel (\"us\"); also as a CUDA-graph replay "
           "over rotating weight copies (\"graph\": 3 calls over 3 weight copies a replay, the replay's time / 3; "
           "the L2 flush comes before each replay), the time a decode loop under CUDA graphs sees. " + (
               "Every kernel has both (bf16 cuBLAS and peer cells: \"eager / graph\"), and every ratio compares like "
               "with like: eager with eager, graph with graph. " if like else
               "This run timed only fourbit from graphs (bench/gpu_peers.py before 2026-11-28 11:30 UTC), so its graph "
               "ratios divide the baselines' eager times by fourbit's graph times, which favors fourbit by the ~2-3 us "
               "a call that a graph of three calls spreads (bf16 cuBLAS at 4096^2 M = 1 on an H200: 18.6 us eager, "
               "16.0 from a graph). ") + "TB/s counts 4-bit weight + scale bytes.\n",
           f"![roofline]({png})\n", "## Side by side (us; lower is better)\n"]
    hdr = ["shape", "M", "bf16"] + list(PEERS) + [f"fourbit {f}" for f in FB] + [f"{f} graph" for f in FB]
    out += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in rows:
        k = r["kernels"]
        both = lambda v: f"{v['us']:.1f}" + (f" / {v['graph_us']:.1f}" if v.get("graph_us") else "")  # noqa: E731
        cells = [r["shape"], str(r["M"]), both(k["bf16 cuBLAS"])]
        cells += [both(k[p]) if p in k else "n/a" for p in PEERS]
        cells += [f"{k['fourbit ' + f]['us']:.1f}" for f in FB]
        cells += [f"{k['fourbit ' + f].get('graph_us', 0):.1f}" for f in FB]
        out.append("| " + " | ".join(cells) + " |")
    out += ["\n## fourbit against bf16 cuBLAS and the best peer (x faster; eager / graph)\n",
            "| shape | M | " + " | ".join(f"{f} x bf16 | {f} x best peer" for f in FB) + " |",
            "|" + "---|" * (2 + 2 * len(FB))]
    for r in rows:
        k = r["kernels"]
        bf, bfg = kt(k["bf16 cuBLAS"]), kt(k["bf16 cuBLAS"], True)
        best, bestg = best_peer(k), best_peer(k, True)
        cells = [r["shape"], str(r["M"])]
        for f in FB:
            v = k["fourbit " + f]
            cells.append(f"{bf / kt(v):.2f} / {bfg / kt(v, True):.2f}")
            cells.append(f"{best / kt(v):.2f} / {bestg / kt(v, True):.2f}" if best else "n/a")
        out.append("| " + " | ".join(cells) + " |")
    out += ["\n## Targets of the performance issue, checked on this run\n",
            "\"met\" is yes when the better of the two timings (eager do_bench / CUDA graph) reaches the target; for "
            "M=16 against M=1, the better M=16 time against the better M=1 time. \"plain read\": a kernel that only "
            "reads the weight's 4-bit codes (bench/read_floor.py: the CUDA read of bench/read_floor.cu, or its Triton "
            "read where that was not built; the JSON names it), timed as the eager column: about the most a read-bound "
            "kernel can show under do_bench, whose eager calls each carry ~3-4 us besides their kernels "
            "(bench/probes/read_method.py).\n",
            "| target | shape | M | format | measured (eager / graph) | met |", "|---|---|---|---|---|---|"]
    byk = {(r["shape"], r["M"]): r["kernels"] for r in rows}
    floor = {r["shape"]: r["read_floor"] for r in rows if "read_floor" in r}
    copy = meta["copy_tbs"]
    for (shape, M), k in byk.items():
        bf, bfg = kt(k["bf16 cuBLAS"]), kt(k["bf16 cuBLAS"], True)
        for f in FB:
            v = k["fourbit " + f]
            e, g = kt(v), kt(v, True)
            if M == 1 and shape in BIG:
                pe, pg = (100 * v["bytes"] / (t * 1e-6) / 1e12 / copy for t in (e, g))
                fl = floor.get(shape)
                pf = f" ({read_name(fl)}: {100 * fl['bytes'] / (fl['us'] * 1e-6) / 1e12 / copy:.0f}%)" if fl else ""
                out.append(f"| M=1 >= 80% of copy | {shape} | 1 | {f} | {pe:.0f}% / {pg:.0f}%{pf} | "
                           f"{'yes' if max(pe, pg) >= 80 else 'no'} |")
            if M == 1 and shape == "4096x4096":
                fl = floor.get(shape)
                pf = f" ({read_name(fl)}: {fl['us']:.1f} us)" if fl else ""
                out.append(f"| M=1 <= 6 us | {shape} | 1 | {f} | {e:.1f} / {g:.1f} us{pf} | "
                           f"{'yes' if min(e, g) <= 6 else 'no'} |")
            if M == 16 and (shape, 1) in byk:
                v1 = byk[(shape, 1)]["fourbit " + f]
                re_, rg = e / kt(v1), g / kt(v1, True)
                # the better M = 16 time against the better M = 1 time: a host-slowed eager M = 1 call must not pass it
                best = min(e, g) / min(kt(v1), kt(v1, True))
                out.append(f"| M=16 <= 1.3x its M=1 | {shape} | 16 | {f} | {re_:.2f}x / {rg:.2f}x (best {best:.2f}x) | "
                           f"{'yes' if best <= 1.3 else 'no'} |")
            goal = 1.5 if 16 < M <= 128 else 1.0 if M == 256 else 0.9 if M >= 1024 else None
            if goal:
                out.append(f"| >= {goal}x bf16 | {shape} | {M} | {f} | {bf / e:.2f}x / {bfg / g:.2f}x | "
                           f"{'yes' if max(bf / e, bfg / g) >= goal else 'no'} |")
    w8 = [r for r in rows if any(k.endswith("+fp8") for k in r["kernels"])]
    if w8:
        out += ["\n## W4A8 (opt-in FP8 E4M3 activations; target >= 1.3x bf16 cuBLAS at M >= 256)\n",
                "bf16, int4+fp8 / mxfp4+fp8: eager us / CUDA-graph us (x bf16: the better of eager against eager and "
                "graph against graph); met: that better ratio.\n",
                "| shape | M | bf16 | fp8 _scaled_mm (row-wise, reference) | int4+fp8 | mxfp4+fp8 | met (best) |",
                "|---|---|---|---|---|---|---|"]
        for r in w8:
            k = r["kernels"]
            b16 = k["bf16 cuBLAS"]
            bf, bfg = kt(b16), kt(b16, True)
            f8 = k.get("fp8 _scaled_mm", {}).get("us")
            cells = [r["shape"], str(r["M"]), f"{bf:.1f}" + (f" / {bfg:.1f}" if "graph_us" in b16 else ""),
                     f"{f8:.1f} ({bf / f8:.2f}x)" if f8 else "n/a"]
            best = 0.0
            for f in ("int4", "mxfp4"):
                v = k.get(f"fourbit {f}+fp8")
                if not v:
                    cells.append("n/a")
                    continue
                x = max(bf / v["us"], bfg / v["graph_us"] if v.get("graph_us") else 0.0)
                g = f" / {v['graph_us']:.1f}" if v.get("graph_us") else ""
                cells.append(f"{v['us']:.1f}{g} ({x:.2f}x)")
                best = max(best, x)
            cells.append("yes" if best >= 1.3 else "no")
            out.append("| " + " | ".join(cells) + " |")
    if d.get("elementwise"):
        out += ["\n## Elementwise kernels, 8192x8192 (bytes read + written; target >= 70% of copy)\n",
                "Eager public-op calls (do_bench) and a CUDA-graph replay of the same call; met as for the targets "
                "above (the better of the two).\n",
                "| kernel | us (eager / graph) | TB/s (eager) | % of copy (eager / graph) | met |", "|---|---|---|---|---|"]
        for e in d["elementwise"]:
            g_us, g_pct = e.get("graph_us"), e.get("graph_pct_copy", 0.0)
            us = f"{e['us']:.1f}" + (f" / {g_us:.1f}" if g_us else "")
            pct = f"{e['pct_copy']:.0f}%" + (f" / {g_pct:.0f}%" if g_us else "")
            out.append(f"| {e['kernel']} | {us} | {e['tbs']:.2f} | {pct} | "
                       f"{'yes' if max(e['pct_copy'], g_pct) >= 70 else 'no'} |")
    if d.get("crossover"):
        out += ["\n## Large-M strategy crossover (CUDA-graph us): fused Triton GEMM vs dequantize + cuBLAS\n",
                "| shape | format | M | fused | dequant + cuBLAS |", "|---|---|---|---|---|"]
        for c in d["crossover"]:
            out.append(f"| {c['shape']} | {c['format']} | {c['M']} | {c['fused_us']:.1f} | "
                       f"{c['dequant_mm_us']:.1f} |")
    if meta.get("unavailable"):
        out += ["\nPeers unavailable in this run: " + ", ".join(f"{k} ({v})" for k, v in meta["unavailable"].items())]
    if notes:  # hand-written analysis of the same run (bench/benchmarks_notes.md)
        out += ["", open(notes).read()]
    print("\n".join(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
