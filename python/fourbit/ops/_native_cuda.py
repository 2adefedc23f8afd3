"""Thin torch wrappers over the CUDA kernels in fourbit._C (csrc/cuda).

No validation beyond what the kernels need (the op layer validates first); tensors must be CUDA and contiguous.
Every launch goes on torch.cuda.current_stream(), so the calls are CUDA-graph capturable (any workspace is
allocated through torch's caching allocator, which the graph's private pool serves during capture).

- `dequantize` / `dequantize_prepared`: a stored 4-bit weight -> [N, K] bf16 / fp16 (csrc/cuda/dequant.cu).
- `linear` / `linear_out`: y[M, N] = x[M, K] @ dequant(W)^T (+ bias), fp32 accumulation, x bf16 / fp16 / fp32.
  bf16 / fp16 with K % 32 == 0 and G == 16 or G % 32 == 0 take the tensor-core GEMV (weights rounded to x's dtype
  before the MMA, see csrc/cuda/gemv.cu); fp32 x and any other shape take the exact fp32-dequant kernel.
  8 < M <= 64 with nib4 weights takes the small-M GEMM (sm_takes); other M > 16 run in 16-row slabs. `tc=True`
  (16 < M, nib4 weights, an sm_90 device, tc_supported) takes the warp-specialized wgmma GEMM of
  csrc/cuda/gemm_tc.cu instead (same operand rounding as the Triton fused kernel); `rs=True` (an sm_90 device,
  rs_takes) the register-A wgmma GEMM of csrc/cuda/gemm_rs.cu (the GEMV's operand rounding).
- `w4a8_takes` / `w4a8_linear_out`: the Hopper FP8 W4A8 GEMM (csrc/cuda/gemm_w4a8.cu) for int4 weights with
  groups of 128 K or a multiple and mxfp4 weights, on E4M3 activations in kernels/w4a8.x8_perm's K order;
  `w4a8_prepared`: the activation quantizer and that GEMM in one native call (fourbit.ops.eager's replays).
- `w4a8_act_takes` / `act_quantize_e4m3`: W4A8's per-row E4M3 activation quantizer (csrc/cuda/act_e4m3.cu).
- `act_quantize`: x [M, K] -> nvfp4 / mxfp4 codes, scales (canonical and 128x4 blocked) and the nvfp4 global scale,
  bit-exact with the formats' quantize_ref.
- `w4a4_linear`: both operands nvfp4 or mxfp4 (activations quantized on the fly), block-scaled MMA on sm_120a/121a,
  bf16-MMA fallback elsewhere.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._native import _DT, _SD, _lib, _ptr  # the shared loader, dtype names and pointer helper


def has_cuda() -> bool:
    """Whether fourbit._C was built with the CUDA kernels (a driver and a device are still needed to run them)."""
    try:
        lib = _lib()
    except ImportError:
        return False
    return bool(getattr(lib, "has_cuda", lambda: False)())


def available() -> bool:
    """CUDA kernels compiled in and a CUDA device present."""
    return has_cuda() and torch.cuda.is_available()


_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # absent from CPU-only torch builds


def _stream(device: Optional[torch.device] = None) -> int:
    """torch's current CUDA stream on device (default: the current device) as a raw handle; the raw getter costs
    ~1 us where torch.cuda.current_stream() builds a Stream object (several us on the GPU machine's host)."""
    if _RAW_STREAM is not None:
        return _RAW_STREAM(torch.cuda.current_device() if device is None else device.index)
    return torch.cuda.current_stream(device).cuda_stream


def _qkind(qdata, lut):
    if qdata.dtype == torch.int8:
        return "int8"
    return "nib4" if lut is not None and lut.numel() == 16 else "uint8"


def linear_path(x, qdata, lut, group_size) -> str:
    """'mma' (tensor-core GEMV) or 'generic' (exact fp32 dequant) for these inputs."""
    kind = _qkind(qdata, lut)
    K = qdata.shape[1] * (2 if kind == "nib4" else 1)
    return _lib().cuda_linear_path(x.data_ptr(), _DT[x.dtype], x.shape[0], qdata.data_ptr(), kind,
                                   qdata.shape[0], K, int(group_size))


def tc_codes(lut) -> int:
    """How gemm_tc and gemm_rs decode a code: 1 for the table lut[c] = c, 2 for c - 8 (int4; by bits, no lookup;
    gemm_rs only 1, with zero points, at x tiles of <= 128 rows), 0 for any other table (a shared-memory lookup). The
    LUT is compared once per tensor version (fourbit.kernels' code_kind; an unseen LUT inside a CUDA-graph capture
    counts as 0)."""
    from ..kernels.dequantize import CODES_SINT, CODES_UINT, code_kind  # Triton's module: GPU machines have it
    kind = code_kind(lut)
    return 1 if kind == CODES_UINT else 2 if kind == CODES_SINT else 0


def tc_supported(x, qdata, scales, zeros, lut, group_size) -> bool:
    """Whether the Hopper tensor-core GEMM (csrc/cuda/gemm_tc.cu) takes this call: nib4 codes, bf16 / fp16 x, an
    sm_90 device, K % 128 == 0 and a (scale kind, group size, zeros, code table) it was built for (the native side
    checks, nothing is launched)."""
    if x.dtype not in (torch.bfloat16, torch.float16) or _qkind(qdata, lut) != "nib4" or scales.dtype not in _SD:
        return False
    has_z = zeros is not None and zeros.numel() > 0
    return _lib().cuda_linear_tc_supported(x.data_ptr(), _DT[x.dtype], x.shape[0], qdata.data_ptr(), qdata.shape[0],
                                           qdata.shape[1] * 2, int(group_size), _SD[scales.dtype], has_z,
                                           tc_codes(lut))


def sm_takes(x, qdata, scales, zeros, lut, group_size) -> bool:
    """Whether linear_out (tc=False) runs x [M, K] through the small-M mma.sync GEMM (csrc/cuda/gemm_sm.cu):
    8 < M <= 64, nib4 codes with a scale kind the 4-bit GEMV has, bf16 / fp16 x, K % 32 == 0, 16-byte aligned x and
    codes, 2-byte aligned scales for G = 16 (the native side checks, nothing is launched)."""
    if x.dtype not in (torch.bfloat16, torch.float16) or _qkind(qdata, lut) != "nib4" or scales.dtype not in _SD:
        return False
    has_z = zeros is not None and zeros.numel() > 0
    return _lib().cuda_linear_sm_takes(x.data_ptr(), _DT[x.dtype], x.shape[0], qdata.data_ptr(), qdata.shape[0],
                                       qdata.shape[1] * 2, int(group_size), scales.data_ptr(), _SD[scales.dtype],
                                       has_z)


def rs_takes(x, qdata, scales, zeros, lut, group_size) -> bool:
    """Whether the Hopper register-A wgmma GEMM (csrc/cuda/gemm_rs.cu) takes this call: nib4 codes with a GEMV scale
    kind and G = 16 / 32 / a multiple of 64, bf16 / fp16 x, K % 64 == 0, 16-byte aligned x, codes, scales and zeros,
    an sm_90 device (the native side checks, nothing is launched)."""
    if x.dtype not in (torch.bfloat16, torch.float16) or _qkind(qdata, lut) != "nib4" or scales.dtype not in _SD:
        return False
    zp = zeros.data_ptr() if zeros is not None and zeros.numel() > 0 else 0
    return _lib().cuda_linear_rs_takes(x.data_ptr(), _DT[x.dtype], x.shape[0], qdata.data_ptr(), qdata.shape[0],
                                       qdata.shape[1] * 2, int(group_size), scales.data_ptr(), _SD[scales.dtype], zp)


def _entry(lib, x_dtype, M, N, K, G, kind, tc, rs):
    """(native launch function, float32 workspace elements) of linear_out's kernel family."""
    if rs:
        return lib.cuda_linear_rs, lib.cuda_linear_rs_workspace(M, N, K)
    if tc:
        return lib.cuda_linear_tc, lib.cuda_linear_tc_workspace(M, N, K)
    return lib.cuda_linear, lib.cuda_linear_workspace(_DT[x_dtype], M, N, K, G, kind)


def linear_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out, tc=False,
               rs=False, codes=None) -> torch.Tensor:
    """out[M, N] = x[M, K] @ dequant(W).T (+ bias) into a caller's contiguous CUDA buffer of x's dtype; tc: through
    the Hopper tensor-core GEMM (tc_supported must hold); rs: the register-A wgmma GEMM (rs_takes must hold); else
    the GEMV / generic kernels. codes (tc / rs): the LUT's kind as tc_codes gives it (None: tc_codes(lut); 0 forces
    the table lookup, for tests)."""
    x, qdata, scales = x.contiguous(), qdata.contiguous(), scales.contiguous()
    zeros = None if zeros is None or zeros.numel() == 0 else zeros.contiguous()
    kind = _qkind(qdata, lut)
    lut = None if lut is None or kind != "nib4" else lut.contiguous().to(device=x.device, dtype=torch.float32)
    bias = None if bias is None else bias.contiguous()
    N = qdata.shape[0]
    K = qdata.shape[1] * (2 if kind == "nib4" else 1)
    M = x.shape[0]
    assert out.is_contiguous() and out.dtype == x.dtype and tuple(out.shape) == (M, N), (out.shape, out.dtype)
    G = int(group_size)
    run, nws = _entry(_lib(), x.dtype, M, N, K, G, kind, tc, rs)
    ws = torch.empty(nws, dtype=torch.float32, device=x.device) if nws else None
    if tc or rs:
        codes = tc_codes(lut) if codes is None else codes
        run(x.data_ptr(), _DT[x.dtype], M, qdata.data_ptr(), N, K, G, scales.data_ptr(), _SD[scales.dtype],
            _ptr(zeros), _ptr(global_scale), _ptr(lut), codes, _ptr(bias), out.data_ptr(), _ptr(ws), nws,
            _stream(x.device))
        return out
    run(x.data_ptr(), _DT[x.dtype], M, qdata.data_ptr(), kind, N, K, G, scales.data_ptr(), _SD[scales.dtype],
        _ptr(zeros), _ptr(global_scale), _ptr(lut), _ptr(bias), out.data_ptr(), _ptr(ws), nws, _stream(x.device))
    return out


def linear_prepared(args, M: int, dtype: torch.dtype, tc: bool = False, rs: bool = False):
    """linear_out with the weight pieces `args` (qdata, scales, zeros, global_scale, lut, group_size; checked,
    contiguous, kept alive by the caller) and M, dtype fixed: a function (x, bias, out, stream) for fourbit.ops.eager
    that makes one native call (linear_out re-derives all of this per call: ~35 us of host time on the H100 machine,
    2026-11-26). None when a piece would need a per-call conversion (linear_out then does it)."""
    qdata, scales, zeros, global_scale, lut, group_size = args
    zeros = None if zeros is None or zeros.numel() == 0 else zeros
    kind = _qkind(qdata, lut)
    lut = lut if kind == "nib4" else None
    if any(t is not None and not t.is_contiguous() for t in (qdata, scales, zeros, global_scale, lut)) or (
            lut is not None and (lut.dtype != torch.float32 or lut.device != qdata.device)):
        return None
    N, G, dev = qdata.shape[0], int(group_size), qdata.device
    K = qdata.shape[1] * (2 if kind == "nib4" else 1)
    dt = _DT[dtype]
    run, nws = _entry(_lib(), dtype, M, N, K, G, kind, tc, rs)
    tail = (N, K, G, scales.data_ptr(), _SD[scales.dtype], _ptr(zeros), _ptr(global_scale), _ptr(lut))
    w = (qdata.data_ptr(), *tail, tc_codes(lut)) if tc or rs else (qdata.data_ptr(), kind, *tail)

    def call(x, bias, out, stream):
        ws = torch.empty(nws, dtype=torch.float32, device=dev) if nws else None
        run(x.data_ptr(), dt, M, *w, 0 if bias is None else bias.data_ptr(), out.data_ptr(), _ptr(ws), nws, stream)
    return call


def dequantize_prepared(qdata, scales, zeros, global_scale, lut, group_size, dtype):
    """csrc/cuda/dequant.cu for this stored weight and output dtype: a function (stream) -> new [N, K] tensor of dtype,
    or None where that kernel does not take these pieces (a float32 dtype, non-nib4 codes, a group size that is not a
    power of two >= 8, a piece not contiguous or not on the codes' device, codes not 16-byte aligned; the Triton
    kernels then run). The pieces must stay alive while the function is used (fourbit.ops.eager's plans keep them)."""
    if (qdata.dtype != torch.uint8 or lut is None or lut.numel() != 16 or lut.dtype != torch.float32
            or scales.dtype not in _SD or dtype not in (torch.bfloat16, torch.float16)):
        return None
    zeros = None if zeros is None or zeros.numel() == 0 else zeros
    global_scale = None if global_scale is None or global_scale.numel() == 0 else global_scale
    dev = qdata.device
    if any(t is not None and (not t.is_contiguous() or t.device != dev)
           for t in (qdata, scales, zeros, global_scale, lut)):
        return None
    N, K, G = qdata.shape[0], qdata.shape[1] * 2, int(group_size)
    lib, sd, od = _lib(), _SD[scales.dtype], _DT[dtype]
    w = (qdata.data_ptr(), N, K, G, scales.data_ptr(), sd, _ptr(zeros), _ptr(global_scale), lut.data_ptr())
    if not lib.cuda_dequantize(*w, 16, od, 0, check_only=True):  # 16 stands for an aligned out (torch.empty's)
        return None

    def call(stream):
        out = torch.empty((N, K), dtype=dtype, device=dev)
        lib.cuda_dequantize(*w, out.data_ptr(), od, stream)
        return out
    return call


def dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype):
    """[N, K] of dtype from a stored 4-bit weight through csrc/cuda/dequant.cu (bit-exact with the reference), or
    None where that kernel does not take it (dequantize_prepared)."""
    fn = dequantize_prepared(qdata, scales, zeros, global_scale, lut, group_size, dtype)
    return None if fn is None else fn(_stream(qdata.device))


def quantize(w, fmt, variant, group_size):
    """(qdata, scales, zeros, global_scale) of w [N, K] through csrc/cuda/quant.cu (bit-exact with the reference; for
    nvfp4 its global-amax pass, then the block pass), or None where that kernel does not take it: float32 weights,
    int8, a codebook without a bucket table (bnb_fp4), a group size that is not a power of two in [16, 512], a weight
    not 16-byte aligned (Triton then runs)."""
    if w.dtype not in (torch.bfloat16, torch.float16) or fmt not in ("int4", "nf4", "bnb_fp4", "nvfp4", "mxfp4"):
        return None
    from ..kernels.quantize import _codebook_tables, _params  # Triton's module: GPU machines have it
    from .library import quantize_out_meta
    N, K, G = w.shape[0], w.shape[1], int(group_size)
    fid, table, nb, zero_code = _params(fmt, variant)[0], None, 0, 0
    if fmt in ("nf4", "bnb_fp4"):
        _, _, zero_code, _, table, nb = _codebook_tables(fmt, str(w.device))
    lib, dt, nv = _lib(), _DT[w.dtype], fmt == "nvfp4"
    head = (w.data_ptr(), dt, N, K, G, fid)
    tail = (_ptr(table), nb, zero_code)
    # 16 stands for torch.empty's aligned outputs (a zero point array where int4 asym needs one, nvfp4's amax and
    # global scale)
    if not lib.cuda_quantize(*head, 16, 16, 16 if fmt == "int4" else 0, *tail, 16 * nv, 16 * nv, 0, check_only=True):
        return None
    qdata, scales, zeros, gscale = quantize_out_meta(w, fmt, variant, G)
    amax = torch.empty(1, dtype=torch.float32, device=w.device) if nv else None  # the amax pass's scratch
    lib.cuda_quantize(*head, qdata.data_ptr(), scales.data_ptr(), _ptr(zeros), *tail, _ptr(amax), _ptr(gscale),
                      _stream(w.device))
    return qdata, scales, zeros, gscale


def linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias=None) -> torch.Tensor:
    """y[M, N] = x[M, K] @ dequant(W).T (+ bias), fp32 accumulation, in x's dtype."""
    out = torch.empty(x.shape[0], qdata.shape[0], dtype=x.dtype, device=x.device)
    return linear_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out)


def w4a8_takes(qdata, scales, group_size) -> bool:
    """Whether the Hopper FP8 W4A8 GEMM (csrc/cuda/gemm_w4a8.cu) takes codes qdata [N, K/2] with these scales and
    kernel group size on the current device: int4 (float32 scales, K and the group multiples of 128) or mxfp4 (E8M0
    scales, groups of 32, K % 128 == 0, a 4-byte aligned scale matrix), 16-byte aligned codes, an sm_90 device (its
    x8 comes from the op's quantizer, always aligned: 0 and 1 stand for "aligned" and "present" here). For mxfp4 the
    op also needs kernels.w4a8.fold_ok(..., span=MX_NATIVE_SPAN) (ops.w4a8.native_gemm)."""
    return _lib().cuda_linear_w4a8_takes(0, 1, 1, qdata.data_ptr(), qdata.shape[0], qdata.shape[1] * 2,
                                         int(group_size), scales.data_ptr(), _SD[scales.dtype])


def w4a8_linear_out(x8, xs, qdata, scales, zeros, group_size, bias, out, after_act: bool = False) -> torch.Tensor:
    """out [M, N] (contiguous, the output dtype) = xs[m] * sum_g scale * sum_k x8 * w (+ bias): x8 float8_e4m3fn
    [M, K] in x8_perm's K order (kernels.w4a8.PERM_INT4 for int4, PERM_MXFP4 for mxfp4), xs float32 [M], qdata uint8
    [N, K/2], scales float32 [N, K/G] (int4: w = q - z, zeros uint8 [N, K/G], or None for q - 8) or float8_e8m0fnu
    [N, K/32] (mxfp4: w = the E2M1 value, zeros None), bias [N] of out's dtype or None; w4a8_takes must hold.
    after_act: act_quantize_e4m3 made x8 and xs just before on this stream (nothing launched since), so the GEMM may
    start early and load its weights while the quantizer runs (programmatic dependent launch; it waits for the
    quantizer's results before reading x8 / xs or writing anything)."""
    M, K = x8.shape
    N = qdata.shape[0]
    lib = _lib()
    nws = lib.cuda_linear_w4a8_workspace(M, N, K)
    ws = torch.empty(nws, dtype=torch.float32, device=out.device) if nws else None
    lib.cuda_linear_w4a8(x8.data_ptr(), xs.data_ptr(), M, qdata.data_ptr(), N, K, int(group_size), scales.data_ptr(),
                         _SD[scales.dtype], _ptr(zeros), _ptr(bias), out.data_ptr(), _DT[out.dtype], _ptr(ws), nws,
                         _stream(out.device), bool(after_act))
    return out


def w4a8_prepared(qdata, scales, zeros, group_size, perm: int, M: int, dtype: torch.dtype):
    """The op's native W4A8 call (act_quantize_e4m3 with perm, then w4a8_linear_out with after_act) for the weight
    pieces qdata, scales, zeros (checked, contiguous, kept alive by the caller; zeros None or empty for none) with M
    and x's dtype fixed: a function (x, bias, out, stream) for fourbit.ops.eager that makes one native call. x8, xs
    and any split-K workspace share one fresh buffer a call (x8 first: 16-byte aligned; xs and the workspace at
    16-byte offsets)."""
    N, K, G = qdata.shape[0], qdata.shape[1] * 2, int(group_size)
    lib = _lib()
    nws = lib.cuda_linear_w4a8_workspace(M, N, K)
    o_xs = -(-M * K // 16) * 16
    o_ws = o_xs + -(-4 * M // 16) * 16
    nbytes, dev, dt = o_ws + 4 * nws, qdata.device, _DT[dtype]
    w = (qdata.data_ptr(), N, G, scales.data_ptr(), _SD[scales.dtype], _ptr(zeros if zeros is not None and
                                                                             zeros.numel() else None))
    run = lib.cuda_w4a8_forward

    def call(x, bias, out, stream):
        buf = torch.empty(nbytes, dtype=torch.uint8, device=dev)  # freed after the launches: stream-ordered reuse
        b = buf.data_ptr()
        run(x.data_ptr(), dt, M, K, perm, b, b + o_xs, *w, _ptr(bias), out.data_ptr(), b + o_ws if nws else 0, nws,
            stream)
    return call


def w4a8_act_takes(x) -> bool:
    """Whether act_quantize_e4m3 takes x [M, K]: CUDA kernels present, a CUDA tensor of f32 / bf16 / f16, contiguous,
    16-byte aligned, K % 8 == 0 (the kernel's 16-byte loads)."""
    return (x.is_cuda and x.dtype in _DT and x.dim() == 2 and x.is_contiguous() and x.shape[1] % 8 == 0
            and x.data_ptr() % 16 == 0 and has_cuda())


def act_quantize_e4m3(x, x8, s, perm: int = 0) -> None:
    """W4A8's per-row E4M3 quantizer (csrc/cuda/act_e4m3.cu), bit-exact with fourbit.ops.w4a8.quantize_act_ref:
    x [M, K] (w4a8_act_takes) -> x8 uint8 [M, K] (E4M3 bytes; perm 1 / 2 (kernels.w4a8.PERM_INT4 / PERM_MXFP4),
    K % 128 == 0: in kernels.w4a8.x8_perm's K order, the CUDA W4A8 GEMM's operand) and s float32 [M], both
    contiguous on x's device."""
    M, K = x.shape
    _lib().cuda_act_quantize_e4m3(x.data_ptr(), _DT[x.dtype], M, K, int(perm), x8.data_ptr(), s.data_ptr(),
                                  _stream(x.device))


def blocked_bytes(rows: int, cols: int) -> int:
    """Size of a [rows, cols] one-byte scale matrix in the 128x4 blocked layout (padded)."""
    return (-(-rows // 128) * 128) * (-(-cols // 4) * 4)


def act_quantize(x: torch.Tensor, fmt: str, variant: str = ""):
    """x [M, K] (CUDA, fp32/bf16/fp16) -> (codes uint8 [M, K/2], scales [M, K/B] (float8_e4m3fn for nvfp4,
    float8_e8m0fnu for mxfp4), blocked scales uint8 (128x4 tiles), global scale float32 [1] (nvfp4) or None)."""
    x = x.contiguous()
    M, K = x.shape
    B = 16 if fmt == "nvfp4" else 32
    dev = x.device
    q = torch.empty(M, K // 2, dtype=torch.uint8, device=dev)
    s = torch.empty(M, K // B, dtype=torch.uint8, device=dev)
    nb = blocked_bytes(M, K // B)
    blocked = torch.empty(nb, dtype=torch.uint8, device=dev)
    g = torch.empty(1, dtype=torch.float32, device=dev) if fmt == "nvfp4" else None
    amax = torch.empty(1, dtype=torch.int32, device=dev) if fmt == "nvfp4" else None
    _lib().cuda_act_quantize(x.data_ptr(), _DT[x.dtype], M, K, fmt, variant, q.data_ptr(), s.data_ptr(),
                             blocked.data_ptr(), nb, _ptr(g), _ptr(amax), _stream())
    sd = torch.float8_e4m3fn if fmt == "nvfp4" else torch.float8_e8m0fnu
    return q, s.view(sd), blocked, g


def w4a4_linear(x: torch.Tensor, fmt: str, qw: torch.Tensor, sw_blocked: torch.Tensor,
                gw: Optional[torch.Tensor], bias: Optional[torch.Tensor] = None, variant: str = "",
                out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """y = quant(x) @ W^T (+ bias) with x quantized on the fly to fmt ("nvfp4" or "mxfp4"); W: codes [N, K/2],
    scales in the blocked layout (fourbit.layout.to_blocked_scales), gw its global scale (nvfp4)."""
    x = x.contiguous()
    M, K = x.shape
    N = qw.shape[0]
    qa, _, sa, ga = act_quantize(x, fmt, variant)
    if out is None:
        out = torch.empty(M, N, dtype=x.dtype, device=x.device)
    bias = None if bias is None else bias.contiguous()
    _lib().cuda_w4a4_linear(fmt, qa.data_ptr(), sa.data_ptr(), _ptr(ga), M, qw.contiguous().data_ptr(),
                            sw_blocked.contiguous().data_ptr(), _ptr(gw), N, K, _ptr(bias), out.data_ptr(),
                            _DT[out.dtype], _stream())
    return out


def w4a4_atom() -> str:
    """'mxf4nvf4-block-scale' on sm_120a/121a, else 'bf16-mma-fallback'."""
    return _lib().cuda_w4a4_atom()
