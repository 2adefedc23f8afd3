"""Does bf16 cuBLAS run at the same speed whatever the weight's values? torch.mm(x, w.t()) timed (do_bench, L2
flushed, median us) with w a random bf16 weight and with each format's dequantized weight (the second half of the
dequantize + cuBLAS route), the dequantize alone beside it. H100 tensor cores draw power by the bits they switch,
so weights with short mantissas (E2M1 times a power of two) may run at a higher clock.
Usage (GPU machine): python3 bench/probes/mm_data.py"""
import torch
import triton

import fourbit

FMTS = ("int4", "nf4", "nvfp4", "mxfp4")


def us(fn):
    return triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median") * 1e3


def main():
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    for (N, K), M in (((4096, 4096), 4096), ((8192, 8192), 1024), ((8192, 8192), 4096)):
        gen = torch.Generator(device="cuda").manual_seed(0)
        w = torch.randn(N, K, device="cuda", generator=gen) * 0.02
        x = torch.randn(M, K, device="cuda", generator=gen).to(torch.bfloat16)
        ws = {"random bf16": w.to(torch.bfloat16)}
        dq = {}
        for f in FMTS:
            qw = fourbit.quantize(w, f)
            ws[f] = qw.dequantize(torch.bfloat16)
            dq[f] = us(lambda qw=qw: qw.dequantize(torch.bfloat16))
        for rep in range(2):  # twice, interleaved: clocks drift over a run
            row = ", ".join(f"{k} {us(lambda v=v: torch.mm(x, v.t())):.1f}" for k, v in ws.items())
            print(f"{N}x{K} M={M} mm us ({rep}): {row}", flush=True)
        print(f"{N}x{K} dequantize us: " + ", ".join(f"{k} {v:.1f}" for k, v in dq.items()), flush=True)


if __name__ == "__main__":
    main()
