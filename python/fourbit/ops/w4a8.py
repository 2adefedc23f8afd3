"""W4A8 (opt-in): FP8 E4M3 activations, quantized per token on the fly, x int4 / mxfp4 weights converted exactly to
FP8 in the kernel, FP8 tensor-core MMA with per-group promotion to float32 (kernels/w4a8.py has the GPU design).

    torch.ops.fourbit.w4a8_linear(x, qdata, scales, zeros, fmt, group_size, bias) -> y [..., N] of x's dtype
    y[m, n] = s_m * sum_g scale[n, g] * sum_{k in g} x8[m, k] * w8[n, k]  (+ bias[n])
x8, s = quantize_act_ref(x) (per-row E4M3, rules below); w8 = q - z (int4 asym), q - 8 (int4 sym: zeros empty),
the E2M1 value (mxfp4, scales float8_e8m0fnu, group 32). The CPU kernel is this formula in float64 (the reference
math: every weight value and product is exact there), so it is slow but it is the oracle of the GPU kernel.

On CUDA, int4 with K and the group multiples of 128, and mxfp4 with K % 128 == 0 whose scales fold exactly
(MX_NATIVE_SPAN), run csrc/cuda/gemm_w4a8.cu up to NATIVE_MAX_M on Hopper (native_gemm); everything else runs
kernels/w4a8.py (the fused Triton kernel, or the block-scaled cuBLAS path from M = 512). The activations are
quantized by csrc/cuda/act_e4m3.cu where the CUDA kernels are built (act_cuda), else by kernels/w4a8.quantize_act;
both are bit-exact with quantize_act_ref. Speed on an H100 and what bounds it: README.md, section W4A8.

Why only int4 and mxfp4: their weight values are exact in E4M3 (at most 4 significant bits, |v| <= 15 or 6). nvfp4's
code x E4M3 block scale needs up to 6 significant bits at a 16-element group; nf4 / bnb_fp4 codebooks are not E4M3
values; int8 values up to 127 need 7 bits. Those are rejected, naming the rule.

Accuracy (fourbit report --formats int4,int4+fp8,mxfp4,mxfp4+fp8 --tokens 8192 --gen-tokens 0, SmolLM2-135M-Instruct,
Hamlet, CPU, 2026-11-26; W4A8_PPL): int4 g128 58.956 (W4A16) -> 59.596 (W4A8, +1.09%), mxfp4 76.858 -> 77.666
(+1.05%); fp32 44.383. First-token agreement with fp32: 0.613 -> 0.611 (int4), 0.582 -> 0.579 (mxfp4).
"""
from __future__ import annotations

import math
import os

import torch

from . import _checks as C
from .cuda import on_device

ACTS = ("bf16", "fp8_e4m3")  # "bf16": the normal W4A16 path (activations in their own dtype); None means "bf16"
FORMATS = ("int4", "mxfp4")
E4M3_MAX = 448.0
REJECTED = {
    "nvfp4": "an E2M1 code times its E4M3 block scale needs up to 6 significant bits, more than E4M3's 4, so nvfp4 "
             "weights are not exact in FP8 at a 16-element group",
    "nf4": "the NF4 codebook values are not representable in E4M3",
    "bnb_fp4": "the bitsandbytes FP4 codebook (values / 12) is not representable in E4M3",
    "int8": "int8 values up to 127 need 7 significant bits, more than E4M3's 4 (W4A8 takes 4-bit weights only)",
}
#: measured perplexity at --tokens 8192 (module docstring): format -> (W4A16, W4A8)
W4A8_PPL = {"int4": (58.956, 59.596), "mxfp4": (76.858, 77.666)}


def check_format_name(fmt: str, argname: str = "fmt") -> None:
    """ValueError unless fmt (a format name) can run W4A8."""
    if fmt in REJECTED:
        raise ValueError(f"{argname}={fmt!r} cannot use act='fp8_e4m3' (W4A8): {REJECTED[fmt]}; supported: "
                         f"{', '.join(FORMATS)} (or keep act='bf16', the W4A16 path)")
    C.check_value(fmt in FORMATS, lambda: f"{argname} must be one of {FORMATS} for W4A8, got {fmt!r}")


def check_group(G: int, argname: str = "group_size") -> None:
    C.check_value(G > 0 and G % 32 == 0, lambda: f"{argname}={G} must be a positive multiple of 32 for W4A8 (one "
                                                 f"FP8 MMA K step is 32)")


def check_format(fmt, K=None) -> None:
    """A fourbit Format (or preset name) can run W4A8; with K, also its kernel group for rows of K elements."""
    from ..quantized import resolve_format  # noqa: PLC0415
    fmt = resolve_format(fmt)
    check_format_name(fmt.name, "format")
    if K is not None:
        check_group(fmt.kernel_group(K), f"the kernel group size gcd(K={K}, group {fmt.group(K)})")
    elif fmt.group_size is not None:
        check_group(fmt.group_size)


def check_act(act) -> str:
    """The normalised activation mode ("bf16" for None)."""
    act = "bf16" if act is None else act
    if act not in ACTS:
        raise ValueError(f"act must be one of {ACTS} (or None = 'bf16'), got {act!r}")
    return act


def w4a8_args(qw):
    """(qdata, scales, zeros, fmt, group_size) of a QuantizedWeight, as w4a8_linear takes them."""
    check_format(qw.format, qw.shape[1])
    qdata, scales, zeros, _g, _lut, G = qw.op_args()
    return qdata, scales, zeros, qw.format.name, G


# --- activation quantization: the reference (the Triton kernel is bit-exact with it) ------------------------------

def quantize_act_ref(x: torch.Tensor):
    """x [M, K] float32/bf16/fp16 -> (x8 float8_e4m3fn [M, K], s float32 [M]).
    s_m = amax_m / 448 (float32 division); s_m = 0 (zero row, or underflow) -> 1; a row holding NaN/Inf -> s_m = NaN
    and x8 = 0. x8 = e4m3(RNE(x / s_m)) (float32 division, then clamp to +-448: torch's cast is RNE, NaN above)."""
    xf = x.float()
    fin = torch.isfinite(xf)
    bad = ~fin.all(-1)
    amax = torch.where(fin, xf.abs(), torch.zeros((), device=x.device)).amax(-1)
    s = amax / E4M3_MAX
    s = torch.where(s == 0, torch.ones((), device=x.device), s)
    s = torch.where(bad, torch.full((), math.nan, device=x.device), s)
    q = (xf / s[:, None]).clamp(-E4M3_MAX, E4M3_MAX)
    q = torch.where(bad[:, None], torch.zeros((), device=x.device), q)
    return q.to(torch.float8_e4m3fn), s


def weight_values(qdata, scales, zeros, fmt, G) -> torch.Tensor:
    """float64 [N, K]: the exact dequantized weight (w8 * group scale), computed from the packed codes."""
    c = torch.stack([qdata & 15, qdata >> 4], -1).reshape(qdata.shape[0], -1).long()
    if fmt == "mxfp4":
        e2m1 = torch.tensor([0, .5, 1, 1.5, 2, 3, 4, 6], dtype=torch.float64, device=qdata.device)
        v = torch.where(c >= 8, -e2m1[c & 7], e2m1[c & 7])
        s = scales.view(torch.uint8).double()
        s = torch.where(s == 255, math.nan, torch.exp2(s - 127))
    else:
        v = c.double() - (zeros.double().repeat_interleave(G, 1) if zeros.numel() else 8.0)
        s = scales.double()
    return v * s.repeat_interleave(G, 1)


# --- the op ----------------------------------------------------------------------------------------------------------

torch.library.define("fourbit::w4a8_linear", "(Tensor x, Tensor qdata, Tensor scales, Tensor zeros, str fmt, "
                                             "int group_size, Tensor? bias) -> Tensor")


def check_w4a8(x, qdata, scales, zeros, fmt, group_size, bias):
    """Checks of w4a8_linear (fake and real kernels alike); returns (M, N, K)."""
    check_format_name(fmt)
    C.dtype_in("qdata", qdata, (torch.uint8,))
    C.check_value(qdata.dim() == 2, lambda: f"qdata must be 2-D [N, K/2] (packed codes), got {tuple(qdata.shape)}")
    N, K = qdata.shape[0], 2 * qdata.shape[1]
    C.check_value(N > 0 and K > 0, lambda: f"qdata must not be empty, got shape {tuple(qdata.shape)}")
    check_group(group_size)
    C.check_value(K % group_size == 0, lambda: f"K={K} must be a multiple of group_size={group_size}")
    C.check_value(fmt != "mxfp4" or group_size == 32, lambda: f"group_size for mxfp4 is fixed at 32, got {group_size}")
    C.dtype_in("scales", scales, (torch.float8_e8m0fnu,) if fmt == "mxfp4" else (torch.float32,))
    C.shape_is("scales", scales, (N, K // group_size))
    C.dtype_in("zeros", zeros, (torch.uint8,))
    C.check_value(zeros.numel() == 0 or (fmt == "int4" and tuple(zeros.shape) == (N, K // group_size)),
                  lambda: f"zeros must be empty (int4 sym: codes q + 8; mxfp4) or uint8 {(N, K // group_size)} "
                          f"(int4 asym), got {tuple(zeros.shape)} for {fmt}")
    C.dtype_in("x", x, C.ACT_DTYPES)
    C.check_value(x.dim() >= 1 and x.shape[-1] == K,
                  lambda: f"x must have shape [..., K={K}] (in_features), got {tuple(x.shape)}")
    M = x.numel() // K
    C.check_value(M > 0, lambda: f"x must not be empty (M = 0 rows), got shape {tuple(x.shape)}")
    for name, t in (("x", x), ("qdata", qdata), ("scales", scales), ("zeros", zeros)):
        C.contiguous(name, t)
    C.same_device("x", x, qdata=qdata, scales=scales, zeros=zeros)
    if bias is not None:
        C.check_type(bias.dtype == x.dtype, lambda: f"bias must have x's dtype {x.dtype}, got {bias.dtype}")
        C.shape_is("bias", bias, (N,))
        C.contiguous("bias", bias)
        C.same_device("x", x, bias=bias)
    return M, N, K


@torch.library.register_fake("fourbit::w4a8_linear")
def _(x, qdata, scales, zeros, fmt, group_size, bias):
    M, N, K = check_w4a8(x, qdata, scales, zeros, fmt, group_size, bias)
    return x.new_empty((*x.shape[:-1], N))


def linear_ref(x, qdata, scales, zeros, fmt, group_size, bias=None) -> torch.Tensor:
    """The reference math in float64 (exact products; one float64 sum), rounded once to x's dtype."""
    K = x.shape[-1]
    x8, s = quantize_act_ref(x.reshape(-1, K))
    y = (x8.double() @ weight_values(qdata, scales, zeros, fmt, group_size).T) * s.double()[:, None]
    if bias is not None:
        y = y + bias.double()
    return y.to(x.dtype).reshape(*x.shape[:-1], -1)


@torch.library.register_kernel("fourbit::w4a8_linear", "cpu")
def _(x, qdata, scales, zeros, fmt, group_size, bias):
    check_w4a8(x, qdata, scales, zeros, fmt, group_size, bias)
    return linear_ref(x, qdata, scales, zeros, fmt, group_size, bias)


@torch.library.register_kernel("fourbit::w4a8_linear", "cuda")
@on_device
def _(x, qdata, scales, zeros, fmt, group_size, bias):
    M, N, K = check_w4a8(x, qdata, scales, zeros, fmt, group_size, bias)
    C.aligned(x=x, qdata=qdata)
    y = torch.empty((*x.shape[:-1], N), dtype=x.dtype, device=x.device)
    linear_into(x.reshape(M, K), qdata, scales, zeros, fmt, group_size, bias, y.view(M, N))
    return y


# Up to this M the op takes the CUDA FP8 GEMM where it can. H100 80GB HBM3, 2026-11-27, 8192^2 int4 g128, us
# (bench/gpu_w4a8.py; GEMM only, activation quantize ~10 / 24 us more): M = 256 51.5 (the Triton fused kernel 96.5,
# bf16 cuBLAS 65.0), M = 1024 181.7 (Triton's block-scaled cuBLAS path 186.9 with its weight conversion, bf16 187.3).
# Since the GEMM's 256-row x tiles (csrc/cuda/gemm_w4a8.cu, w8_plan; H100 80GB HBM3, 2026-11-28, bench/probes/
# w8_gemm.py, the op from a CUDA graph, us, int4 / mxfp4, CUDA GEMM vs block-scaled cuBLAS in the same call):
#   M = 1024: 4096^2 60.7 / 65.1 vs 64.1 / 63.1, 8192^2 164.3 / 174.2 vs 198.6 / 197.2: the CUDA GEMM (one loss);
#   M = 2048: 4096^2 111.4 / 116.9 vs 105.3 / 105.2, 8192^2 315.9 / 333.9 vs 340.4 / 341.5: split by shape;
#   M = 4096: 4096^2 211.2 / 224.2 vs 183.4 / 183.0, 8192^2 644.3 / 678.0 vs 641.5 / 641.2: block-scaled cuBLAS.
# So the window ends at M = 1024 (8192^2 M = 2048 would gain 7% through the GEMM; not taken, one shape). Above it mxfp4
# whose rows fold to one factor takes cuBLAS's row-wise scaled GEMM (kernels.w4a8.linear_rowwise; 8192^2 M = 2048
# 295.9 us from a graph against the block-scaled 354.4, M = 4096 513.2 against 650.3), int4 the block-scaled one.
NATIVE_MAX_M = 1024


# mxfp4 through the CUDA GEMM: its operand bytes are E4M3(v * 2^d) from a per-group table, exact while they are E4M3
# normals, i.e. d >= -5 for the 0.5 code (csrc/cuda/gemm_w4a8.cu, mx_table): kernels.w4a8.fold_ok's span.
MX_NATIVE_SPAN = 5


def native_gemm(qdata, scales, fmt, group_size, M=1) -> bool:
    """Whether the op's CUDA kernel runs the FP8 GEMM of csrc/cuda/gemm_w4a8.cu for M rows (int4 with K and the
    group multiples of 128, or mxfp4 with K % 128 == 0 whose scales fold exactly into its operand tables, M <=
    NATIVE_MAX_M, an sm_90 device; FOURBIT_W4A8_CUDA=0 keeps the Triton kernels) rather than kernels/w4a8.py's."""
    if fmt not in FORMATS or M > NATIVE_MAX_M or os.environ.get("FOURBIT_W4A8_CUDA", "1") == "0":
        return False
    from . import _native_cuda as nc  # noqa: PLC0415
    if not (nc.available() and nc.w4a8_takes(qdata, scales, group_size)):
        return False
    if fmt == "mxfp4":
        from ..kernels import w4a8 as kw  # noqa: PLC0415
        return kw.fold_ok(qdata, scales, span=MX_NATIVE_SPAN)
    return True


def act_cuda(x2) -> bool:
    """Whether the op quantizes x2 [M, K] with the CUDA kernel (csrc/cuda/act_e4m3.cu) rather than the Triton one
    (kernels/w4a8.quantize_act); both are bit-exact with quantize_act_ref. FOURBIT_W4A8_ACT_CUDA=0 keeps Triton."""
    if os.environ.get("FOURBIT_W4A8_ACT_CUDA", "1") == "0":
        return False
    from . import _native_cuda as nc  # noqa: PLC0415
    return nc.w4a8_act_takes(x2)


def quantize_act(x2, perm=False):
    """(x8 float8_e4m3fn [M, K], s float32 [M]) of x2 [M, K] on its GPU, as the op makes them (act_cuda picks the
    kernel); perm: x8 in kernels.w4a8.x8_perm's K order."""
    from ..kernels import w4a8 as kw  # noqa: PLC0415 (Triton, imported on first use)
    if not act_cuda(x2):
        return kw.quantize_act(x2, perm=perm)
    from . import _native_cuda as nc  # noqa: PLC0415
    from ..kernels._launch import host, scratch  # noqa: PLC0415
    M, K = x2.shape
    x8, s = scratch((M, K), torch.uint8, x2.device), scratch((M,), torch.float32, x2.device)
    host(nc.act_quantize_e4m3, x2, x8, s, perm)  # replayable (fourbit.ops.eager)
    return x8.view(torch.float8_e4m3fn), s


def linear_into(x2, qdata, scales, zeros, fmt, group_size, bias, y2) -> None:
    """The CUDA kernel's work on checked arguments: y2 [M, N] = W4A8 product of x2 [M, K] (both contiguous)."""
    from ..kernels import w4a8 as kw  # noqa: PLC0415 (Triton, imported on first use)
    if native_gemm(qdata, scales, fmt, group_size, x2.shape[0]):
        from . import _native_cuda as nc  # noqa: PLC0415
        from ..kernels._launch import host  # noqa: PLC0415
        x8, s = quantize_act(x2, perm=kw.PERM_MXFP4 if fmt == "mxfp4" else kw.PERM_INT4)
        z = zeros if zeros.numel() else None  # a replay maps only non-empty tensors (kernels._launch.Replay)
        # after_act: the CUDA quantizer was the last launch on the stream, so the GEMM may start early (PDL)
        host(nc.w4a8_linear_out, x8, s, qdata, scales, z, group_size, bias, y2, act_cuda(x2))  # replayable
        return
    x8, s = quantize_act(x2)
    fid = kw.FMT_MXFP4 if fmt == "mxfp4" else (kw.FMT_INT4_ASYM if zeros.numel() else kw.FMT_INT4_SYM)
    kw.linear(x8, s, qdata, scales, zeros, fid, group_size, bias, y2)


# --- autograd: straight-through for the activation quantizer ----------------------------------------------------------
# quant(x) is piecewise constant, so its true derivative is 0 almost everywhere; W4A8 defines d quant(x) / dx := 1
# (the straight-through estimator of quantization-aware training), which makes the gradient that of W4A16:
# grad_x = grad_y @ dequant(W), grad_bias = sum of grad_y. Without this registration torch would warn and return a
# silently wrong gradient. The weight stays frozen (no gradient), as for fourbit::linear.

def _setup(ctx, inputs, output):
    x, qdata, scales, zeros, fmt, group_size, bias = inputs
    ctx.save_for_backward(qdata, scales, zeros)
    ctx.fmt, ctx.group_size, ctx.x_dtype, ctx.has_bias = fmt, group_size, x.dtype, bias is not None


def _backward(ctx, grad):
    qdata, scales, zeros = ctx.saved_tensors
    w = weight_values(qdata, scales, zeros, ctx.fmt, ctx.group_size).to(ctx.x_dtype)
    grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias else None
    return grad @ w, None, None, None, None, None, grad_bias


torch.library.register_autograd("fourbit::w4a8_linear", _backward, setup_context=_setup)
