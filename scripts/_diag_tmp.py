import torch, fourbit
from fourbit.kernels import w4a8 as kw
from fourbit.ops import w4a8
for M, N, K in ((1024, 8192, 8192), (512, 272, 1024), (515, 272, 1024)):
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        qw = fourbit.quantize(torch.randn(N, K, device="cuda") * 0.02, "int4")
        x = torch.randn(M, K, device="cuda", dtype=dt)
        b0 = kw.blockwise_fallbacks
        y = fourbit.linear(x, qw, act="fp8_e4m3")
        torch.cuda.synchronize()
        qd, sc, z, fmt, G = w4a8.w4a8_args(qw)
        print(M, N, K, dt, "G", G, "path", kw.path(M, N, 0, G, False, x.device), "fallbacks", kw.blockwise_fallbacks - b0, kw.last_fallback_error[:300])
        x8, xs = kw.quantize_act(x)
        w8, f = kw.weight_fp8(qd, sc, z, 0, G, False)
        sa = xs.repeat(K // 128).view(K // 128, M).t()
        for lbl, kwargs in (("plain", {}), ("out", dict(out=torch.empty(M, N, device="cuda", dtype=dt)))):
            try:
                torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=f, out_dtype=dt, **kwargs); print("  ok", lbl)
            except Exception as e:
                print("  FAIL", lbl, str(e).splitlines()[0][:200])
