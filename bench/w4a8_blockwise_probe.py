"""Probe for W4A8 through cuBLAS block-scaled FP8 (kernels.w4a8.linear_blockwise): which scale layouts / bias / out=
torch's _scaled_mm accepts with 1x128 scales on both operands, the error against the fused W4A8 kernel, and the
time of each piece against bf16 cuBLAS and FP8 tensorwise _scaled_mm. Run: python3 bench/w4a8_blockwise_probe.py"""
import torch
import triton

import fourbit
from fourbit.kernels import w4a8 as kw
from fourbit.ops import w4a8

dev = "cuda"
t = lambda fn: triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3  # noqa: E731


def try_(name, fn):
    try:
        r = fn()
        print(f"  ok   {name}")
        return r
    except Exception as e:  # noqa: BLE001 (a probe: report and go on)
        print(f"  FAIL {name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return None


def main():
    N = K = 8192
    for name, fid in (("int4", kw.FMT_INT4_ASYM), ("mxfp4", kw.FMT_MXFP4)):
        qw = fourbit.quantize(torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02, name)
        qd, sc, z, fmt, G = w4a8.w4a8_args(qw)
        fold = fid == kw.FMT_MXFP4 and kw.fold_ok(qd, sc)
        print(f"{name}: G={G} fold={fold} step={kw.step(fid, G, fold)}")
        if kw.step(fid, G, fold) != 128:
            continue
        w8, f = kw.weight_fp8(qd, sc, z, fid, G, fold)
        for M in (256, 1024, 4096):
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            bias = torch.randn(N, device=dev, dtype=torch.bfloat16)
            x8, xs = kw.quantize_act(x)
            sa = xs.repeat(K // 128).view(K // 128, M).t()
            if M == 256:
                for lbl, sb in (("scale_b [K/128, N] row-major", f), ("scale_b f.t()", f.t()),
                                ("scale_b f.t().contiguous()", f.t().contiguous())):
                    try_(lbl, lambda sb=sb: torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=sb, out_dtype=x.dtype))
                try_("bias", lambda: torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=f, bias=bias,
                                                      out_dtype=x.dtype))
                y = torch.empty(M, N, device=dev, dtype=x.dtype)
                try_("out=", lambda: torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=f, out_dtype=x.dtype, out=y))
                try_("fp32 out", lambda: torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=f, out_dtype=torch.float32))
            ref = torch.empty(M, N, device=dev, dtype=x.dtype)
            kw.linear(x8, xs, qd, sc, z, fid, G, bias, ref, fold=fold)
            yb = try_(f"blockwise M={M}", lambda: kw.linear_blockwise(x8, xs, qd, sc, z, fid, G, bias,
                                                                      torch.empty_like(ref), fold))
            if yb is not None:
                d = (yb.float() - ref.float()).abs()
                print(f"  M={M}: max |blockwise - fused| {d.max().item():.3e}, rel {(d.max() / ref.float().abs().max()).item():.3e}"
                      f", mismatching elements {(yb != ref).float().mean().item():.4f}")
            w16 = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
            one = torch.ones((), device=dev)
            wt = torch.randn(N, K, device=dev).to(torch.float8_e4m3fn)
            r = dict(bf16=t(lambda: x @ w16.t()),
                     fp8_tensorwise=t(lambda: torch._scaled_mm(x8, wt.t(), scale_a=one, scale_b=one, out_dtype=x.dtype)),
                     act_quant=t(lambda: kw.quantize_act(x)),
                     weight_fp8=t(lambda: kw.weight_fp8(qd, sc, z, fid, G, fold)),
                     fp8_blockwise_mm=t(lambda: torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=f, out_dtype=x.dtype)),
                     fused_w4a8=t(lambda: kw.linear(x8, xs, qd, sc, z, fid, G, bias, ref, fold=fold)),
                     op_w4a8=t(lambda: fourbit.linear(x, qw, bias, act="fp8_e4m3")))
            print(f"  M={M} us: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
