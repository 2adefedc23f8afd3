"""Roofline PNG from bench/gpu_peers.py's JSON: achieved TB/s and TFLOP/s against M, one row of panels per shape
with a full M sweep (4096x4096, 8192x8192), one line per kernel.

  python3 bench/roofline.py peers.json [out.png]      (needs matplotlib: pip install 'fourbit[bench]')
fourbit's lines use the CUDA-graph replay time (the kernels), peers and cuBLAS the eager do_bench median (their
host cost per call is a few us; fourbit's Triton paths are host-bound when called eagerly, see BENCHMARKS.md).
The ceilings drawn are the copy bandwidth measured in the same run and the bf16 cuBLAS peak seen.
"""
import json
import sys


def main(path: str, out: str = "roofline.png") -> None:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    data = json.load(open(path))
    rows, meta = data["rows"], data["meta"]
    shapes = [s for s in dict.fromkeys(r["shape"] for r in rows) if sum(r["shape"] == s for r in rows) > 2]
    fig, axes = plt.subplots(len(shapes), 2, figsize=(13, 4.2 * len(shapes)), squeeze=False)
    peak = max(v["tflops"] for r in rows for k, v in r["kernels"].items() if k == "bf16 cuBLAS")
    for (ax_bw, ax_fl), shape in zip(axes, shapes):
        for ax in (ax_bw, ax_fl):
            ax.set_prop_cycle(color=plt.cm.tab20.colors)  # > 10 series: no repeated colours
        series = {}
        for r in (r for r in rows if r["shape"] == shape):
            for k, v in r["kernels"].items():
                us = v.get("graph_us") or v["us"]
                tbs, tf = v["bytes"] / (us * 1e-6) / 1e12, v["tflops"] * v["us"] / us  # rates at the time used
                series.setdefault(k, []).append((r["M"], tbs, tf))
        for k, pts in sorted(series.items()):
            pts.sort()
            style = "-" if k.startswith("fourbit") else "--"
            ms = [p[0] for p in pts]
            ax_bw.plot(ms, [p[1] for p in pts], style, marker="o", label=k)
            ax_fl.plot(ms, [p[2] for p in pts], style, marker="o", label=k)
        ax_bw.axhline(meta["copy_tbs"], color="k", lw=1, label="copy bandwidth")
        ax_fl.axhline(peak, color="k", lw=1, label="bf16 cuBLAS peak seen")
        for ax, label in ((ax_bw, "weight + scale TB/s"), (ax_fl, "TFLOP/s")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("M (tokens)")
            ax.set_ylabel(label)
            ax.set_title(shape)
            ax.grid(True, alpha=0.3)
        ax_fl.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{meta['card']}, torch {meta['torch']}, triton {meta['triton']} (fourbit: CUDA-graph time; "
                 f"others: eager do_bench)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
