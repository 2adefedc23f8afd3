"""Roofline PNG from bench/gpu_peers.py's JSON: achieved TB/s and TFLOP/s against M, one line per kernel and shape.

  python3 bench/roofline.py peers.json [out.png]      (needs matplotlib: pip install 'fourbit[bench]')
The ceilings drawn are the copy bandwidth measured in the same run (meta.copy_tbs) and the bf16 cuBLAS peak seen.
"""
import json
import sys


def main(path: str, out: str = "roofline.png") -> None:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    data = json.load(open(path))
    rows, meta = data["rows"], data["meta"]
    fig, (ax_bw, ax_fl) = plt.subplots(1, 2, figsize=(13, 5))
    series = {}
    for r in rows:
        for k, v in r["kernels"].items():
            series.setdefault((r["shape"], k), []).append((r["M"], v["tbs"], v["tflops"]))
    for (shape, k), pts in sorted(series.items()):
        pts.sort()
        ms = [p[0] for p in pts]
        style = "-" if k.startswith("fourbit") else "--"
        ax_bw.plot(ms, [p[1] for p in pts], style, marker="o", label=f"{k} {shape}")
        ax_fl.plot(ms, [p[2] for p in pts], style, marker="o", label=f"{k} {shape}")
    ax_bw.axhline(meta["copy_tbs"], color="k", lw=1, label="copy bandwidth")
    peak = max(v["tflops"] for r in rows for k, v in r["kernels"].items() if k == "bf16 cuBLAS")
    ax_fl.axhline(peak, color="k", lw=1, label="bf16 cuBLAS peak seen")
    for ax, label in ((ax_bw, "weight + scale TB/s"), (ax_fl, "TFLOP/s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("M (tokens)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    ax_fl.legend(fontsize=6, ncol=2)
    fig.suptitle(f"{meta['card']}, torch {meta['torch']}, triton {meta['triton']}")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
