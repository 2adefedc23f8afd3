"""fourbit.kernels (Triton) against the FP32 references: bit-exact pack/unpack/quantize/dequantize for every preset,
linear and linear_scaled within derived error bounds.

Without a CUDA device the kernels run under the Triton interpreter (TRITON_INTERPRET=1, small shapes). The variable
must be set before fourbit.kernels is imported (triton.jit reads it when it decorates): this module sets it at import;
if something imported fourbit.kernels earlier in this pytest process, the interpreter tests rerun in a fresh process
(test_rerun_in_fresh_interpreter). With a GPU the same tests run on it, plus the larger @pytest.mark.gpu cases.
Interpreter limits, each case then runs on GPU only: none so far; the interpreter cannot run tl.dot on bf16
operands nor extern (libdevice) calls, and its dot_scaled takes E8M0 scales only, so the kernels route around these
(see gemm.py / gemm_scaled.py) and every launcher still runs here.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, strategies as st

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("FOURBIT_TRITON_AUTOTUNE", "0")  # many shapes: one config (test_tuned_linear runs pick())

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402
import fourbit.kernels as K  # noqa: E402
from fourbit import testing  # noqa: E402
from fourbit.formats import PRESETS  # noqa: E402
from fourbit.formats._absmax import compress  # noqa: E402
from fourbit.formats._base import U32  # noqa: E402
from fourbit.formats.fp4_e2m1 import encode as e2m1_encode_ref  # noqa: E402
from fourbit.kernels import codecs as cd  # noqa: E402
QZ = importlib.import_module("fourbit.kernels.quantize")  # the module (fourbit.kernels.quantize is a function)
from fourbit.layout import pack_nibbles_ref, unpack_nibbles_ref  # noqa: E402
from strategies import nvfp4_underflow_weight, special_weights, weights  # noqa: E402

DEV = "cuda" if ON_GPU else "cpu"
# the interpreter's numpy casts warn on values it saturates / overflows on purpose (3e38 outliers, Inf groups)
# and on the NaN / Inf groups that quantize computes and then discards
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]
ACT = [torch.float32, torch.bfloat16, torch.float16]


def _interpreted() -> bool:
    from triton.runtime.interpreter import InterpretedFunction
    return isinstance(K.pack._pack_kernel, InterpretedFunction)


READY = ON_GPU or _interpreted()
needs_ready = pytest.mark.skipif(not READY, reason="fourbit.kernels was imported before TRITON_INTERPRET=1 was set; "
                                                   "test_rerun_in_fresh_interpreter runs these tests instead")


def test_rerun_in_fresh_interpreter():
    if READY:
        pytest.skip("kernels already run here (GPU or interpreter)")
    env = dict(os.environ, TRITON_INTERPRET="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__], env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


# --- bounds --------------------------------------------------------------------------------------------------------

def linear_bound(x, w, out_dtype, operand_dtype=torch.float32, bias=None):
    """Worst-case |y - x @ w^T (+ bias)| when each w value is rounded to operand_dtype before the products (x is
    already of that dtype), products are exact in float32 and summed in float32, then up to 3 more float32
    roundings of size |y| (global-scale multiplies; a reference weight or activation that itself rounded a
    product), then the output rounding. Derivation: w~ = w (1 + d) + e with |d| <= u_op (2^-8 bf16, 2^-11 fp16,
    0 for float32 operands) and |e| <= half the smallest subnormal of operand_dtype; float32 accumulation adds
    gamma_K * sum |x| |w~| (testing.matmul_error_bound, which also holds the bias and output terms); so on top of
    it: (u_op (1 + 1.01 K u) + 4 u) * sum |x| |w| * (1 + u_out) + e * sum |x|."""
    base = testing.matmul_error_bound(x, w, out_dtype, bias)
    u_op = 0.0 if operand_dtype == torch.float32 else testing.UNIT_ROUNDOFF[operand_dtype]
    e = 0.0 if operand_dtype == torch.float32 else testing.TINY[operand_dtype] / 2
    absdot = x.double().abs().cpu() @ w.double().abs().cpu().T
    extra = (u_op * (1 + 1.01 * x.shape[-1] * U32) + 4 * U32) * absdot * (1 + testing.UNIT_ROUNDOFF[out_dtype])
    return base + extra + e * x.double().abs().cpu().sum(-1, keepdim=True)


def assert_linear_bounded(y, x, w, bias, operand_dtype, name):
    """y matches x @ w^T (+ bias) (float64 oracle) within linear_bound."""
    ref = testing.reference_linear(x, w, bias)
    testing.assert_within_bound(y, ref, linear_bound(x, w, y.dtype, operand_dtype, bias), name)


def test_linear_bound_rejects_a_wrong_result():
    x, w = torch.randn(4, 256).bfloat16(), torch.randn(8, 256)
    y = testing.reference_linear(x, w).bfloat16()
    assert_linear_bounded(y, x, w, None, torch.bfloat16, "exact")
    y[1, 3] += 0.05 * y.abs().max()
    with pytest.raises(AssertionError, match=r"worst at \(1, 3\)"):
        assert_linear_bounded(y, x, w, None, torch.bfloat16, "off")


# --- helpers ---------------------------------------------------------------------------------------------------------

def op_parts(w, fmt):
    """The kernel's quantize output (on DEV) and the reference's, as op-level pieces (double quant: the op returns
    the plain absmax, which fourbit.quantize then compresses)."""
    plain = fmt.replace(double_quant=False) if getattr(fmt, "double_quant", False) else fmt
    got = K.quantize(w.to(DEV).contiguous(), fmt.name, fmt.variant, fmt.group(w.shape[1]))
    ref = testing.reference_quantize(w, plain).op_args()[:4]
    return got, ref


def check_quantize(w, name):
    """Bit-exact quantize, then dequantize of the reference's stored weight in every output dtype."""
    fmt = PRESETS[name]
    got, ref = op_parts(w, fmt)
    for key, a, b in zip(("qdata", "scales", "zeros", "global_scale"), got, ref):
        testing.assert_bit_exact(a.cpu(), b, f"{name} {key}")
    args = [t.to(DEV) for t in testing.reference_quantize(w, fmt).op_args()[:5]]
    deq = fmt.dequantize_ref(fmt.quantize_ref(w))
    for dtype in ACT:
        out = K.dequantize(*args, fmt.group(w.shape[1]), dtype)
        testing.assert_bit_exact(out.cpu(), deq.to(dtype), f"{name} dequantize {dtype}")


def weight_on_dev(w, fmt):
    """(op args on DEV, float32 dequantized reference weight)."""
    qw = testing.reference_quantize(w, fmt)
    return [t.to(DEV) for t in qw.op_args()[:5]] + [qw.op_args()[5]], fmt.dequantize_ref(fmt.quantize_ref(w))


# --- pack / unpack ---------------------------------------------------------------------------------------------------

@needs_ready
def test_pack_every_byte():
    lo, hi = torch.meshgrid(torch.arange(16, dtype=torch.uint8), torch.arange(16, dtype=torch.uint8), indexing="ij")
    codes = torch.stack([lo.flatten(), hi.flatten()], -1).flatten().to(DEV)
    testing.assert_bit_exact(K.pack_nibbles(codes).cpu(), pack_nibbles_ref(codes.cpu()), "pack")
    all_bytes = torch.arange(256, dtype=torch.uint8)
    testing.assert_bit_exact(K.unpack_nibbles(all_bytes.to(DEV)).cpu(), unpack_nibbles_ref(all_bytes), "unpack")


@needs_ready
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(0, 2**31 - 1))
def test_pack_unpack_any_shape(lead, seed):
    shape = (*lead[:-1], 2 * lead[-1] * 7)
    codes = torch.randint(0, 16, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    for block in (K.pack.BLOCK, 16):  # the shipped block, and a small one so several programs share the masks
        packed = K.pack.pack_nibbles(codes.to(DEV), block=block)
        testing.assert_bit_exact(packed.cpu(), pack_nibbles_ref(codes), f"packed (block {block})")
        testing.assert_bit_exact(K.pack.unpack_nibbles(packed, block=block).cpu(), codes, f"unpacked (block {block})")


# --- quantize / dequantize: bit-exact --------------------------------------------------------------------------------

@needs_ready
@given(st.sampled_from(sorted(PRESETS)).flatmap(lambda n: st.tuples(st.just(n), weights(PRESETS[n]))))
def test_quantize_dequantize_bit_exact(case):
    """Every preset, weights with all-zero groups, outliers, exact ties, constant and tiny groups, all dtypes."""
    name, w = case
    check_quantize(w, name)


@needs_ready
@pytest.mark.parametrize("dtype", ACT)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_quantize_special_values(name, dtype):
    check_quantize(special_weights().to(dtype), name)  # bf16 / fp16: nvfp4 takes _nvfp4_16bit_kernel


@needs_ready
def test_nvfp4_underflowed_block_scale():
    """Blocks whose s * g underflows to 0 (strategies.nvfp4_underflow_weight): e2m1_encode_quotient's bounds are then
    0, so +-0 keeps code 0 / 8 and other x get +-6, as the reference defines it."""
    check_quantize(nvfp4_underflow_weight(), "nvfp4")


def _check_nvfp4_parts(got, w):  # quantize op outputs against the FP32 reference's, bit for bit
    ref = testing.reference_quantize(w, PRESETS["nvfp4"]).op_args()[:4]
    for key, a, b in zip(("qdata", "scales", "zeros", "global_scale"), got, ref):
        testing.assert_bit_exact(a.cpu(), b, f"nvfp4 {key}")


@needs_ready
@pytest.mark.parametrize("rev", [True, False])
def test_nvfp4_16bit_program_order(rev):
    """_nvfp4_16bit_kernel's programs walk (row, group chunk) in one flat grid, from the end by default (REV): 3 rows
    of 132 groups at 32 groups a program (a partial last chunk)."""
    w = (torch.randn(3, 132 * 16, generator=torch.Generator().manual_seed(3)) * 3).bfloat16()
    w[2, 5] = float("nan")
    _check_nvfp4_parts(QZ.quantize(w.to(DEV), "nvfp4", "", 16, tile=512, rev=rev), w)


@needs_ready
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nvfp4_16bit_misaligned_view(dtype):
    """A weight view starting at an odd element (2 bytes past a 4-byte boundary) cannot be read as 32-bit words, as
    the 16-bit kernels read it: it takes the generic kernels (on the GPU the word loads would fault), bit-exact."""
    w = special_weights().to(dtype)
    v = torch.empty(w.numel() + 1, dtype=dtype, device=DEV)[1:].view(w.shape)
    v.copy_(w.to(DEV))
    assert v.data_ptr() % 4 == 2
    _check_nvfp4_parts(QZ.quantize(v, "nvfp4", "", 16), w)


@needs_ready
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cfg,keep", [((64, 3, 1), 0), ((128, 2, 2), 1000), ((256, 1, 4), 1 << 30)])
def test_nvfp4_amax16_configs(dtype, cfg, keep):
    """_amax16_kernel (nvfp4's amax pass on bf16 / fp16 words) over (words a load, loads a program, warps) where the
    last program is partial (1024 words, 192 a program) or all are whole (256 a program), with no eviction hints, the
    evict_last part starting inside the tensor, and all of it evict_last; NaN / Inf left out of the amax."""
    w = special_weights().to(dtype)
    w[3, 7] = 1e4  # the float32 outlier would be Inf in fp16
    _check_nvfp4_parts(QZ.quantize(w.to(DEV), "nvfp4", "", 16, amax_cfg=cfg, keep=keep), w)


@needs_ready
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nvfp4_16bit_quotients_at_ties(dtype):
    """nvfp4's 16-bit kernel compares two |x| lanes a word with 16-bit bounds: groups with every positive finite
    E4M3 scale s, global scale g = 2^-3 (a tensor amax of 336), so that d = s g and every tie * d is a bf16 / fp16,
    and elements at the E2M1 ties and grid values * d and their +-2 neighbours (16-bit ulps), both signs."""
    gen = torch.Generator().manual_seed(11)
    s = torch.arange(1, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()  # 2^-9 .. 448
    d = s * 2.0**-3
    marks = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    x = (marks[torch.randint(len(marks), (len(s), 15), generator=gen)] * d[:, None]).to(dtype)
    x = (x.view(torch.int16) + torch.randint(-2, 3, x.shape, generator=gen, dtype=torch.int16)).view(dtype)
    x = x.float() * (torch.randint(0, 2, x.shape, generator=gen) * 2 - 1)
    w = torch.cat([6 * d[:, None], torch.minimum(torch.maximum(x, -6 * d[:, None]), 6 * d[:, None])], 1)
    w = torch.cat([w, torch.full((1, 16), 336.0)]).to(dtype)  # the last group sets the tensor's amax
    p = testing.reference_parts(w, PRESETS["nvfp4"])
    assert torch.equal(p.scales[:-1].float().flatten(), s) and float(p.global_scale) == 2.0**-3
    assert (torch.isin((w[:-1, 1:].float() / d[:, None]).abs(), marks[:7])).sum() > 100, "too few exact ties"
    check_quantize(w, "nvfp4")


def _tie_weights(name, rows=8, K=256, seed=5):
    """(weights, divisors): quotients x / d within 3 ulps of a rounding tie of the format's encoder (half-integers
    for the integer formats, the E2M1 bounds for nvfp4, whose d = E4M3 scale * global scale). Each group's extremes
    are set first, so that d is known from the reference, and the other values stay inside them."""
    fmt = PRESETS[name]
    G = fmt.group(K)
    gen = torch.Generator().manual_seed(seed)
    n_groups = rows * K // G
    s0 = torch.exp(torch.empty(n_groups).uniform_(-20, 20, generator=gen))
    w = torch.zeros(n_groups, G)
    if fmt.name == "nvfp4":
        w[:, 0] = 6 * s0
        ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
        ties = torch.cat([ties, -ties])
    else:
        qmax = 2 ** (fmt.bits - 1) - 1 if fmt.symmetric else 2 ** fmt.bits - 1
        if fmt.symmetric:
            w[:, 0] = qmax * s0
        else:
            w[:, 0], w[:, 1] = 0.45 * qmax * s0, -0.55 * qmax * s0
        ties = torch.arange(-qmax, qmax).float() + 0.5
    p = testing.reference_parts(w.reshape(rows, K), fmt)
    d = p.scales.reshape(n_groups, -1)[:, :1].float()
    if fmt.name == "nvfp4":
        d = d * p.global_scale.float()
    x = (ties[torch.randint(len(ties), (n_groups, G - 2), generator=gen)] * d).contiguous()
    x = (x.view(torch.int32) + torch.randint(-3, 4, x.shape, generator=gen, dtype=torch.int32)).view(torch.float32)
    w[:, 2:] = torch.minimum(torch.maximum(x, w.min(1, keepdim=True).values), w.max(1, keepdim=True).values)
    return w.reshape(rows, K), d


@needs_ready
@pytest.mark.parametrize("name", ["int4", "int4_sym", "int8", "int8_asym", "nvfp4"])
def test_quantize_quotients_at_ties(name):
    """The integer formats divide by multiplying with RN(1 / d) and correcting with two FMA residual steps
    (kernels/quantize._div), nvfp4 compares |x| with the E2M1 bounds times d (codecs.e2m1_encode_quotient); these
    weights put quotients within 3 ulps of the encoder's ties, where the product alone lands on the other side for
    some elements (asserted, so the case can fail), and the codes must match."""
    w, d = _tie_weights(name)
    wg = w.reshape(d.shape[0], -1)
    enc = e2m1_encode_ref if PRESETS[name].name == "nvfp4" else torch.round
    assert (enc(wg / d) != enc(wg * (1 / d))).any(), "no element where the shortcut alone differs"
    check_quantize(w, name)


@triton.jit
def _e2m1_kernel(v_ptr, c_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(v_ptr + offs, mask=offs < n)
    tl.store(c_ptr + offs, cd.e2m1_encode(v).to(tl.uint8), mask=offs < n)


@needs_ready
def test_e2m1_encode_every_boundary():
    """codecs.e2m1_encode (integer bit arithmetic) against fp4_e2m1.encode: every decision bound and grid value
    +- 4 ulps, both signs, every power of two from 2^-149 to 2^127, and the largest finite float. The ties, one per
    bound: 0.25 -> code 0, 0.75 -> 2, 1.25 -> 2, 1.75 -> 4, 2.5 -> 4, 3.5 -> 6, 5 -> 6 (even code); above 5
    saturates to 6 (code 7)."""
    marks = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0])
    near = (marks.view(torch.int32)[:, None] + torch.arange(-4, 5, dtype=torch.int32)).view(torch.float32)
    pows = torch.ldexp(torch.ones(277), torch.arange(-149, 128).float())
    v = torch.cat([near.flatten(), pows, torch.tensor([0.0, torch.finfo(torch.float32).max])])
    v = torch.cat([v, -v])
    out = torch.empty(v.shape, dtype=torch.uint8, device=DEV)
    _e2m1_kernel[(triton.cdiv(v.numel(), 256),)](v.to(DEV), out, v.numel(), BLOCK=256)
    testing.assert_bit_exact(out.cpu(), e2m1_encode_ref(v), "e2m1 codes")


@triton.jit
def _e2m1_quotient_kernel(x_ptr, d_ptr, c_ptr, C: tl.constexpr, INTERP: tl.constexpr):
    row = tl.program_id(0)
    x = tl.load(x_ptr + row * C + tl.arange(0, C))
    d = tl.load(d_ptr + row + tl.arange(0, 1))
    c = cd.e2m1_encode_quotient(x[None, :], d[:, None], INTERP)
    tl.store(c_ptr + row * C + tl.arange(0, C), c.reshape(C).to(tl.uint8))


@needs_ready
def test_e2m1_encode_quotient_at_every_bound():
    """codecs.e2m1_encode_quotient (no division: bounds on |x| a divisor d) against fp4_e2m1.encode(x / d) with
    torch's IEEE float32 division: for d = every power of two from 2^-149 to 2^127 times 9 significands (subnormal
    d included), x = RN(d * v) +- 4 ulps for each decision bound and grid value v (exact ties wherever d * v is a
    float32: 0.25 -> code 0, 0.75 -> 2, ...), both signs, and d = 0 (codes +-0 as +-0, any other x as +-6)."""
    sig = torch.tensor([1.0, 1 + 2**-23, 1.25, 1.5, 1.75, 2 - 2**-23, 1.1, 1.3333333, 1.9])
    d = (torch.ldexp(torch.ones(277, dtype=torch.float64), torch.arange(-149, 128))[:, None] * sig.double()).flatten()
    d = torch.cat([d.float()[d.float() > 0], torch.zeros(1)])
    marks = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]).double()
    x = (d.double()[:, None] * marks).float()  # RN(d * v)
    x = (x.view(torch.int32)[:, :, None] + torch.arange(-4, 5, dtype=torch.int32)).view(torch.float32).flatten(1)
    C = 256
    x = torch.cat([x, torch.zeros(len(d), C // 2 - x.shape[1] - 2), torch.tensor([1e-45, 3e38]).expand(len(d), 2)], 1)
    x = torch.where(torch.isfinite(x) & (x >= 0), x, 0.0)
    x = torch.cat([x, -x], 1).contiguous()
    out = torch.empty(x.shape, dtype=torch.uint8, device=DEV)
    _e2m1_quotient_kernel[(len(d),)](x.to(DEV), d.to(DEV), out, C=C, INTERP=not ON_GPU)
    q = x / d[:, None]
    assert (q.abs() == 0.75).any() and (q.abs() == 5.0).any(), "no exact tie among the quotients"
    testing.assert_bit_exact(out.cpu(), e2m1_encode_ref(torch.where(x == 0, x, q)), "e2m1 codes of x / d")


@triton.jit
def _levels_kernel(d_ptr, out_ptr, L: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    d = tl.load(d_ptr + offs)
    lv = tl.full([BLOCK], L, tl.float32)
    tl.store(out_ptr + offs, QZ._steps(d, lv, QZ._recip(tl.full([1], L, tl.float32))))


@needs_ready
@pytest.mark.parametrize("levels", [7, 15, 127, 255])
def test_scale_by_steps_every_float_of_three_binades(levels):
    """quantize's s = RN(d / levels) for the integer formats (int4 / int8, sym / asym): the reciprocal and two FMA
    residual steps against the IEEE division, for every float32 in [1, 2), [2^-86, 2^-85) and [2^85, 2^86) (the ends
    of the range where the kernel takes that path). The steps scale exactly with d's binade (nothing under- or
    overflows in between), so these cover every d the fast path sees."""
    n = 1 << 23
    for e in (0, -86, 85):
        d = (torch.arange(n, dtype=torch.int32) + ((127 + e) << 23)).view(torch.float32)
        out = torch.empty(n, dtype=torch.float32, device=DEV)
        block = 1024 if ON_GPU else 1 << 18  # the interpreter is fastest on few large programs
        _levels_kernel[(n // block,)](d.to(DEV), out, L=levels, BLOCK=block)
        testing.assert_bit_exact(out.cpu(), d / levels, f"d / {levels}, binade 2^{e}")


@needs_ready
@pytest.mark.parametrize("name", ["nf4", "bnb_fp4"])
def test_codebook_every_midpoint_and_bucket_edge(name):
    """The codebook encoders at t = x / amax equal to every midpoint and every bucket edge of the kernel's table
    (slices of 2 / 32 of [-1, 1]; nf4 uses it, bnb_fp4 the binary search) +- 6 ulps, both signs of the edges, and
    -1, 0, 1. Each group holds 1.0, so amax = 1 and t = x exactly. The ties: t equal to a midpoint takes the lower
    entry (midpoints strictly below t are counted)."""
    from fourbit.formats._codebook import midpoints
    cb = PRESETS[name].codebook
    mids = midpoints(torch.sort(cb).values)
    edges = torch.arange(-16, 17).float() / 16
    marks = torch.cat([mids, edges])
    t = (marks.view(torch.int32)[:, None] + torch.arange(-6, 7, dtype=torch.int32)).view(torch.float32).flatten()
    t = torch.cat([t, torch.tensor([-1.0, 0.0, -0.0, 1.0])]).clamp(-1, 1)
    G = PRESETS[name].group(256)
    per_row = 256 // G  # groups per row of 256
    t = torch.cat([t, torch.zeros((-t.numel()) % ((G - 1) * per_row))]).view(-1, G - 1)
    w = torch.cat([torch.ones(t.shape[0], 1), t], 1).reshape(-1, 256)
    check_quantize(w, name)


@needs_ready
@pytest.mark.parametrize("name", [n for n, f in sorted(PRESETS.items()) if f.name in ("nf4", "bnb_fp4", "nvfp4",
                                                                                   "mxfp4")])
def test_all_16_codes_survive(name):
    fmt = PRESETS[name]
    check_quantize(fmt.lut()[torch.arange(256) % 16].reshape(1, 256).repeat(2, 1), name)


@needs_ready
@pytest.mark.parametrize("name,group", [("int4", 32), ("int4_sym", 64), ("int4", None), ("int8", 32),
                                        ("int8_asym", None), ("nf4", 16), ("bnb_fp4", 128)])
def test_group_sizes(name, group):
    """Group sizes other than the presets', per-channel with K not a power of two (384)."""
    fmt = PRESETS[name].replace(**({"block_size": group} if hasattr(PRESETS[name], "block_size")
                                   else {"group_size": group}))
    w = torch.randn(5, 384, generator=torch.Generator().manual_seed(3)) * 3
    got, ref = op_parts(w, fmt)
    for key, a, b in zip(("qdata", "scales", "zeros", "global_scale"), got, ref):
        testing.assert_bit_exact(a.cpu(), b, f"{fmt} {key}")


@needs_ready
@pytest.mark.parametrize("K", [512, 1536])
@pytest.mark.parametrize("name", ["int8", "int8_asym", "int4"])
def test_dequantize_groups_of_many_256s(name, K):
    """Per-channel groups that are multiples of 256 share one compiled kernel (GC = 256): the launcher must keep its
    K tiles within 256 there (a (8, 1024) tile once read the scale of the wrong group)."""
    fmt = PRESETS[name] if name != "int4" else PRESETS[name].replace(group_size=None)  # per-channel
    w = torch.randn(37, K, generator=torch.Generator().manual_seed(K)) * 0.05
    qw = testing.reference_quantize(w, fmt)
    args = [t.to(DEV) if isinstance(t, torch.Tensor) else t for t in qw.op_args()]
    testing.assert_bit_exact(K_dequantize(args).cpu(), fmt.dequantize_ref(fmt.quantize_ref(w)), f"{name} K={K}")


def K_dequantize(args):
    return K.dequantize(*args, torch.float32)


FOUR_BIT = sorted(n for n, f in PRESETS.items() if f.bits == 4)
DQ = importlib.import_module("fourbit.kernels.dequantize")


def check_group_tables(w, fmt, dtype, **kw):
    """The group-table kernel, forced on, for the reference's stored weight: bit-exact against the reference.
    Returns (op args on DEV, its output)."""
    args, ref = weight_on_dev(w, fmt)
    got = DQ.dequantize(*args, dtype, table=True, **kw)
    testing.assert_bit_exact(got.cpu(), ref.to(dtype), f"{fmt} {dtype}")
    return args, got


@needs_ready
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", FOUR_BIT)
def test_dequantize_group_tables(name, dtype):
    """The group-table kernel (16-bit outputs; the default for codebook formats) forced on for every 4-bit preset:
    special values (special_weights: NaN / Inf groups, subnormal scales, -0.0 codes), several groups a K tile
    (K = 256) and a K tile inside one per-channel group (int4 with G = K = 1024, tiles of 256)."""
    w = special_weights()
    for ww in (w, w.repeat(1, 4)[:5] * 0.01):
        check_group_tables(ww, PRESETS[name], dtype)
    if name == "int4":
        check_group_tables(w.repeat(1, 4) * 0.01, PRESETS[name].replace(group_size=None), dtype, block=(2, 512))


@pytest.mark.gpu
@pytest.mark.parametrize("name", FOUR_BIT)
def test_gpu_dequantize_group_tables(name):
    """The group-table kernel on the GPU (its prmt asm; the interpreter runs a twin of it) at a larger shape, both
    16-bit dtypes, against the reference and against the element-wise kernel."""
    w = torch.randn(300, 4096, generator=torch.Generator().manual_seed(12)) * 0.02
    w[17, 1000], w[200, 64:80], w[5, 7] = 40.0, 0.0, float("nan")
    for dtype in (torch.bfloat16, torch.float16):
        args, got = check_group_tables(w, PRESETS[name], dtype)
        testing.assert_bit_exact(got, DQ.dequantize(*args, dtype, table=False), f"{name} {dtype} twin")


@needs_ready
def test_dequantize_group_tables_reject():
    """Forcing the group-table kernel where its tiles cannot hold whole groups (G = K = 384) or for a float32
    output is an error naming the rule, not a wrong result."""
    args, _ = weight_on_dev(torch.randn(2, 384), PRESETS["int4"].replace(group_size=None))
    for dtype in (torch.bfloat16, torch.float32):
        with pytest.raises(ValueError, match="whole groups"):
            DQ.dequantize(*args, dtype, table=True)


@needs_ready
def test_double_quant_from_kernel_scales():
    """nf4_dq: the kernel's absmax, compressed by fourbit's double quant, equals the reference's stored scales."""
    w = torch.randn(4, 512, generator=torch.Generator().manual_seed(1))
    got, _ = op_parts(w, PRESETS["nf4_dq"])
    ref = testing.reference_quantize(w, PRESETS["nf4_dq"]).op_args()[1]
    testing.assert_bit_exact(compress(got[1].cpu().reshape(-1)).decode().reshape(ref.shape), ref, "nf4_dq scales")


# --- linear ----------------------------------------------------------------------------------------------------------

@needs_ready
@given(st.sampled_from(sorted(PRESETS)).flatmap(lambda n: st.tuples(st.just(n), weights(PRESETS[n], special=False,
                                                                                        max_groups=2))),
       st.sampled_from([1, 5, 17, 33]), st.sampled_from(ACT), st.booleans(), st.integers(0, 2**31 - 1))
def test_linear_matches_reference(case, M, dtype, with_bias, seed):
    """y = x @ dequant(W)^T (+ bias): the W tile is rounded to x's dtype for tl.dot (linear_bound)."""
    name, w = case
    fmt = PRESETS[name]
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.float16:  # keep W and y inside fp16's range: overflow is not what this checks
        w = w.float() / w.float().abs().max().clamp(min=1e-30)
    args, wd = weight_on_dev(w, fmt)
    N, Kdim = w.shape
    x = torch.randn(M, Kdim, generator=gen).to(dtype)
    bias = torch.randn(N, generator=gen).to(dtype) if with_bias else None
    y = K.linear(x.to(DEV), *args, None if bias is None else bias.to(DEV))
    assert y.dtype == dtype and y.shape == (M, N)
    assert_linear_bounded(y.cpu(), x, wd, bias, dtype, f"{name} linear {dtype}")


@needs_ready
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_linear_nonfinite_policy(name):
    """A NaN/Inf group makes its output column NaN and leaves the others finite (double quant: its nested block)."""
    fmt = PRESETS[name]
    w = torch.randn(3, 256, generator=torch.Generator().manual_seed(5))
    w[2, 100] = float("nan")
    args, wd = weight_on_dev(w, fmt)
    y = K.linear(torch.randn(17, 256).to(DEV), *args, None).cpu()
    assert torch.isnan(y[:, 2]).all()
    assert torch.isfinite(y[:, :2]).all() or getattr(fmt, "double_quant", False)


@needs_ready
def test_linear_out_argument():
    w = torch.randn(24, 128)
    args, wd = weight_on_dev(w, PRESETS["nf4"])
    x = torch.randn(20, 128)
    out = torch.full((20, 24), float("nan"), device=DEV)
    y = K.linear(x.to(DEV), *args, None, out=out)
    assert y.data_ptr() == out.data_ptr()
    assert_linear_bounded(out.cpu(), x, wd, None, torch.float32, "out=")


# --- linear_scaled (tl.dot_scaled) -----------------------------------------------------------------------------------

SCALED = ["nvfp4", "mxfp4", "mxfp4_rceil"]


def check_scaled(name, act, dtype, M, N, Kdim, seed, with_bias=True):
    fmt = PRESETS[name]
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(N, Kdim, generator=gen)
    args, wd = weight_on_dev(w, fmt)
    x = torch.randn(M, Kdim, generator=gen).to(dtype)
    bias = torch.randn(N, generator=gen).to(dtype) if with_bias else None
    y = K.linear_scaled(x.to(DEV), args[0], args[1], args[3], fmt.name, None if bias is None else bias.to(DEV),
                        act, variant=fmt.variant or "floor")
    assert y.dtype == dtype and y.shape == (M, N)
    if act == "fp4":  # activations quantized with the weight format's own reference rule
        xr = fmt.dequantize_ref(fmt.quantize_ref(x))
        assert_linear_bounded(y.cpu(), xr, wd, bias, torch.float32, f"{name} W4A4 {dtype}")
    else:  # e2m1 * scale is exact in bf16: float32 accumulation of exact products
        assert_linear_bounded(y.cpu(), x, wd, bias, torch.float32, f"{name} bf16 act")


@needs_ready
@pytest.mark.parametrize("name", SCALED)
@pytest.mark.parametrize("act,dtype", [("bf16", torch.bfloat16), ("fp4", torch.bfloat16), ("fp4", torch.float32),
                                       ("fp4", torch.float16)])
@pytest.mark.parametrize("M,N,Kdim", [(1, 24, 64), (33, 40, 192)])
def test_linear_scaled(name, act, dtype, M, N, Kdim):
    check_scaled(name, act, dtype, M, N, Kdim, seed=M * N + Kdim)


# --- GPU only: larger shapes, the tuned path --------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_gpu_large_quantize_dequantize(name):
    w = torch.randn(300, 4096, generator=torch.Generator().manual_seed(11)) * 0.02
    w[17, 1000] = 40.0
    w[200, 64:80] = 0.0
    check_quantize(w, name)


@pytest.mark.gpu
@pytest.mark.parametrize("M", [17, 64, 255])
@pytest.mark.parametrize("dtype", ACT)
def test_gpu_large_linear(M, dtype):
    gen = torch.Generator().manual_seed(M)
    for name in ("int4", "nf4", "nvfp4", "mxfp4", "int8"):
        w = torch.randn(257, 2048, generator=gen) * 0.02
        args, wd = weight_on_dev(w, PRESETS[name])
        x = torch.randn(M, 2048, generator=gen).to(dtype)
        bias = torch.randn(257, generator=gen).to(dtype)
        y = K.linear(x.to(DEV), *args, bias.to(DEV))
        assert_linear_bounded(y.cpu(), x, wd, bias, dtype, f"{name} M={M} {dtype}")


@pytest.mark.gpu
def test_tuned_linear(monkeypatch):
    monkeypatch.setenv("FOURBIT_TRITON_AUTOTUNE", "1")
    w = torch.randn(512, 1024, generator=torch.Generator().manual_seed(2))
    args, wd = weight_on_dev(w, PRESETS["int4"])
    x = torch.randn(300, 1024).bfloat16()
    assert_linear_bounded(K.linear(x.to(DEV), *args, None).cpu(), x, wd, None, torch.bfloat16, "tuned")


@pytest.mark.gpu
@pytest.mark.parametrize("name", SCALED)
@pytest.mark.parametrize("act", ["bf16", "fp4"])
def test_gpu_large_linear_scaled(name, act, monkeypatch):
    monkeypatch.setenv("FOURBIT_TRITON_AUTOTUNE", "1")
    check_scaled(name, act, torch.bfloat16, 200, 384, 2048, seed=3)


# --- split-K ----------------------------------------------------------------------------------------------------------

def _check_split(name, dtype, M, N, Kdim, splits, seed, with_bias=True):
    """linear with forced split-K factors against the float64 oracle; every split gives the same function, and the
    same split run twice gives the same bits (fixed-order reduction)."""
    fmt = PRESETS[name]
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(N, Kdim, generator=gen)
    if dtype == torch.float16:
        w = w / w.abs().max()
    args, wd = weight_on_dev(w, fmt)
    x = torch.randn(M, Kdim, generator=gen).to(dtype)
    bias = torch.randn(N, generator=gen).to(dtype) if with_bias else None
    xd, bd = x.to(DEV), None if bias is None else bias.to(DEV)
    for s in splits:
        out = torch.full((M, N), float("nan"), device=DEV, dtype=dtype)
        y = K.linear(xd, *args, bd, out=out, split_k=s)
        assert y.data_ptr() == out.data_ptr()
        assert_linear_bounded(y.cpu(), x, wd, bias, dtype, f"{name} split_k={s} {dtype}")
        testing.assert_bit_exact(K.linear(xd, *args, bd, split_k=s).cpu(), y.cpu(), f"{name} split_k={s} rerun")


@needs_ready
@pytest.mark.parametrize("name", ["int4", "nf4", "nvfp4", "mxfp4"])
@pytest.mark.parametrize("dtype", ACT)
def test_linear_split_k(name, dtype):
    """K = 320 / 336 is 10-11 interpreter K tiles (BK 32): splits 2, 3 and 4 leave uneven runs, nvfp4's K = 336 ends
    in a partial tile; nvfp4's global scale and the bias are applied after the reduction."""
    Kdim = {"int4": 384, "nf4": 320, "nvfp4": 336, "mxfp4": 320}[name]
    _check_split(name, dtype, 19, 24, Kdim, (1, 2, 3, 4), seed=len(name) + Kdim)


@needs_ready
def test_linear_split_k_more_splits_than_tiles():
    _check_split("nvfp4", torch.bfloat16, 5, 17, 64, (7,), seed=4, with_bias=False)


def test_split_k_for():
    from fourbit.kernels import gemm
    cpu = torch.device("cpu")
    for nt, s in ((10, 3), (9, 4), (5, 7), (64, 8), (1, 1)):
        splits, k_split = gemm.split_k_for(64, 64, nt * 128, 64, 64, 128, s, cpu)
        assert k_split % 128 == 0 and (splits - 1) * k_split < nt * 128 <= splits * k_split, (nt, s)
    assert gemm.split_k_for(64, 4096, 4096, 64, 64, 128, gemm.AUTO, cpu)[0] == 1  # enough tiles already


def test_config_picks_are_static():
    """The tuned configs are pure functions of the shape (no timing at run time, so every process picks alike): each
    pick is an entry of its M bucket, the same on every call, including the two measured exceptions of gemm.pick."""
    from fourbit.kernels import gemm, gemm_scaled, w4a8 as kw
    import itertools
    for M in range(1, 4200, 7):
        assert kw.pick(M) in kw.candidates(M) and gemm_scaled.pick(M) in gemm_scaled.CONFIGS, M
        for N, G in itertools.product((4096, 14336), (16, 32, 128)):
            c = gemm.pick(M, N, G)
            assert c in gemm.candidates(M) and c == gemm.pick(M, N, G), (M, N, G)
    assert gemm.pick(64, 14336, 128) == gemm.candidates(64)[1] != gemm.pick(64, 8192, 128)
    assert gemm.pick(300, 4096, 16) == gemm.candidates(300)[1] != gemm.pick(300, 4096, 32)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["int4", "nf4", "nvfp4", "mxfp4"])
@pytest.mark.parametrize("dtype", ACT)
def test_gpu_linear_split_k(name, dtype):
    """GPU blocks (BK 64): K = 1152 / 1216 is 18-19 tiles; splits 2, 3, 5, 8, 32."""
    Kdim = {"int4": 1152, "nf4": 1216, "nvfp4": 1168, "mxfp4": 1184}[name]
    _check_split(name, dtype, 70, 200, Kdim, (2, 3, 5, 8, 32), seed=Kdim)


@pytest.mark.gpu
@pytest.mark.parametrize("M", [32, 64, 128, 256])
def test_gpu_tuned_split_k_configs(M, monkeypatch):
    """Every config of the M bucket (split-K AUTO included) on a shape that splits, and the tuned path (pick())."""
    from fourbit.kernels import gemm
    monkeypatch.setenv("FOURBIT_TRITON_AUTOTUNE", "1")
    gen = torch.Generator().manual_seed(M)
    for name in ("int4", "nf4", "nvfp4", "mxfp4"):
        w = torch.randn(256, 4096, generator=gen) * 0.02
        args, wd = weight_on_dev(w, PRESETS[name])
        x = torch.randn(M, 4096, generator=gen).bfloat16()
        bias = torch.randn(256, generator=gen).bfloat16()
        for cfg in gemm.candidates(M):
            y = torch.empty(M, 256, device=DEV, dtype=torch.bfloat16)
            gemm.launch(x.to(DEV), *args, bias.to(DEV), y, config=cfg)
            assert_linear_bounded(y.cpu(), x, wd, bias, torch.bfloat16, f"{name} M={M} {cfg}")
        y = K.linear(x.to(DEV), *args, bias.to(DEV))
        assert_linear_bounded(y.cpu(), x, wd, bias, torch.bfloat16, f"{name} M={M} tuned")
