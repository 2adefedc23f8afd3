"""Whether cuBLAS's FP8 GEMM (torch._scaled_mm) keeps float32 SUBNORMAL scales, row-wise ([M, 1] x [1, N]) and
block-scaled (1x128): kernels/w4a8.weight_fp8_rows gives a weight row whose largest E8M0 byte is below 7 the factor
2^(E - 133), a subnormal, and an all-tiny x row gets a subnormal s_m. Prints, per (scale_a, scale_b, output dtype),
the median of y / (exact product) over the larger outputs and the count of zero outputs.
Result (H100 80GB HBM3, torch 2.11.0+cu130, 2026-11-28): both kinds keep subnormal scales (ratio 0.99996 in float32
for every pair, the same as with unit scales); in bf16 only outputs below bf16's own subnormal range round to 0.
Usage (GPU machine): python3 bench/probes/scale_subnormal.py."""
import torch
torch.manual_seed(0)
a = torch.randn(32, 256, device="cuda").to(torch.float8_e4m3fn)
b = torch.randn(32, 256, device="cuda").to(torch.float8_e4m3fn)
ref = (a.double() @ b.double().t())
K = 256
for sa_v, sb_v in [(1.0, 1.0), (1.0, 2.0**-130), (2.0**-130, 1.0), (2.0**-130, 2.0**10), (2.0**10, 2.0**-133), (2.0**-140, 2.0**20)]:
    for kind in ("row", "block"):
        if kind == "row":
            sa = torch.full((32, 1), sa_v, device="cuda"); sb = torch.full((1, 32), sb_v, device="cuda")
        else:
            sa = torch.full((K // 128, 32), sa_v, device="cuda").t(); sb = torch.full((K // 128, 32), sb_v, device="cuda")
        for dt in (torch.float32, torch.bfloat16):
            try:
                y = torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=dt).double()
                r = ref * sa_v * sb_v
                m = r.abs() > r.abs().max() * 1e-3
                print(kind, sa_v, sb_v, dt, "ratio median", (y[m] / r[m]).median().item(), "zeros", int((y == 0).sum()))
            except RuntimeError as e:
                print(kind, sa_v, sb_v, dt, "refused", str(e)[:80])
