"""The registered ops (CPU kernels) against the FP32 references: bit-exact pack/unpack/quantize/dequantize,
linear within the float32-accumulation bound, opcheck, torch.compile, autograd, and clear errors on bad input."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st

import fourbit
from fourbit import testing
from fourbit.formats import PRESETS
from fourbit.layout import pack_nibbles_ref, unpack_nibbles_ref
from strategies import weights

OPS = torch.ops.fourbit
ACT = [torch.float32, torch.bfloat16, torch.float16]


def stored(qw: fourbit.QuantizedWeight):
    """The op-level pieces of a quantized weight, for bit comparisons."""
    return dict(zip(("qdata", "scales", "zeros", "global_scale"), qw.op_args()[:4]))


# --- pack / unpack -------------------------------------------------------------------------------------------------

@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(0, 2**31 - 1))
def test_pack_unpack_round_trip_any_shape(lead, seed):
    shape = (*lead[:-1], 2 * lead[-1] * 7)
    codes = torch.randint(0, 16, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    packed = OPS.pack_nibbles(codes)
    testing.assert_bit_exact(packed, pack_nibbles_ref(codes), "packed")
    testing.assert_bit_exact(OPS.unpack_nibbles(packed), codes, "unpacked")


def test_pack_every_byte():
    """All 256 (low, high) pairs: element 2i in the low nibble."""
    lo, hi = torch.meshgrid(torch.arange(16, dtype=torch.uint8), torch.arange(16, dtype=torch.uint8), indexing="ij")
    codes = torch.stack([lo.flatten(), hi.flatten()], -1).flatten()
    packed = OPS.pack_nibbles(codes)
    assert packed.tolist() == [(h << 4) | l for l, h in zip(lo.flatten().tolist(), hi.flatten().tolist())]
    testing.assert_bit_exact(OPS.unpack_nibbles(torch.arange(256, dtype=torch.uint8)),
                             unpack_nibbles_ref(torch.arange(256, dtype=torch.uint8)), "unpack all bytes")


# --- quantize / dequantize: bit-exact -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_quantize_dequantize_bit_exact(name):
    fmt = PRESETS[name]

    @given(weights(fmt))
    def check(w):
        qw, ref = fourbit.quantize(w, fmt), testing.reference_quantize(w, fmt)
        for key, t in stored(ref).items():
            testing.assert_bit_exact(stored(qw)[key], t, f"{name} {key}")
        deq = fmt.dequantize_ref(fmt.quantize_ref(w))
        for dtype in ACT:
            testing.assert_bit_exact(qw.dequantize(dtype), deq.to(dtype), f"{name} dequantize {dtype}")
        testing.assert_quantization_error(fmt, w, qw.dequantize(), name)

    check()


@pytest.mark.parametrize("name", ["int4", "int4_sym", "int8", "int8_asym"])
@pytest.mark.parametrize("group", [32, 64, 128, 256, None])
def test_integer_group_sizes(name, group):
    fmt = PRESETS[name].replace(group_size=group)
    w = torch.randn(5, 512, generator=torch.Generator().manual_seed(group or 0)) * 3
    qw, ref = fourbit.quantize(w, fmt), testing.reference_quantize(w, fmt)
    for key, t in stored(ref).items():
        testing.assert_bit_exact(stored(qw)[key], t, f"{fmt} {key}")


@pytest.mark.parametrize("name", [n for n, f in sorted(PRESETS.items()) if f.name in ("nf4", "bnb_fp4", "nvfp4",
                                                                                   "mxfp4")])
def test_all_16_codes_survive_quantize(name):
    """Each group holds every codebook value once per 16 (so its absmax is the codebook's largest magnitude and the
    scale is exactly 1): every code must come back unchanged."""
    fmt = PRESETS[name]
    w = fmt.lut()[torch.arange(256) % 16].reshape(1, 256).repeat(2, 1)
    qw = fourbit.quantize(w, fmt)
    codes = fourbit.layout.unpack_nibbles_ref(qw.qdata)
    lut = fmt.lut()
    testing.assert_bit_exact(lut[codes.long()], w, f"{name} codes")  # value-exact (bnb_fp4 has two zeros)
    testing.assert_bit_exact(qw.qdata, testing.reference_quantize(w, fmt).qdata, name)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_kernel_nonfinite_policy(name, bad):
    fmt = PRESETS[name]
    w = torch.randn(3, 256, generator=torch.Generator().manual_seed(5))
    w[2, 100] = bad
    qw = fourbit.quantize(w, fmt)
    testing.assert_bit_exact(qw.dequantize(), fmt.dequantize_ref(fmt.quantize_ref(w)), name)
    y = fourbit.linear(torch.randn(2, 256), qw)
    assert torch.isnan(y[:, 2]).all()
    if getattr(fmt, "double_quant", False):  # the NaN scale poisons its nested block (here all 12 scales)
        assert torch.isnan(y).all()
    else:
        assert torch.isfinite(y[:, :2]).all()


@pytest.mark.parametrize("name", ["int4", "int4_sym", "nf4_dq", "mxfp4", "int8_asym"])
def test_groups_across_rows(name):
    """K not a multiple of G (SmolLM2's K = 576 with int4 g128): groups of G consecutive row-major elements cross
    rows. Bit-exact with the reference on the flattened weight, and the kernels agree through sub-groups."""
    fmt = PRESETS[name]
    if name == "nf4_dq":
        fmt = fmt.replace(block_size=128)
    if name == "int8_asym":
        fmt = fmt.replace(group_size=128)
    K = 576 if name != "mxfp4" else 48
    w = torch.randn(6, K, generator=torch.Generator().manual_seed(7))
    w[1, 500 % K] = 30.0  # an outlier in a group that spans rows 0/1 or sits inside row 1
    qw, ref = fourbit.quantize(w, fmt), testing.reference_quantize(w, fmt)
    for key, t in stored(ref).items():
        testing.assert_bit_exact(stored(qw)[key], t, f"{name} {key}")
    flat = fmt.dequantize_ref(fmt.quantize_ref(w.reshape(-1, fmt.group(K)))).reshape(w.shape)  # the definition
    testing.assert_bit_exact(qw.dequantize(), flat, f"{name} dequantize")
    testing.assert_quantization_error(fmt, w, qw.dequantize(), name)
    x = torch.randn(5, K)
    testing.assert_linear_close(fourbit.linear(x, qw), x, flat, name=f"{name} linear")


# --- linear --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_linear_matches_reference(name):
    fmt = PRESETS[name]

    @given(weights(fmt, special=False), st.sampled_from([1, 2, 3, 5, 16, 17, 33]), st.sampled_from(ACT),
           st.booleans(), st.integers(0, 2**31 - 1))
    def check(w, M, dtype, with_bias, seed):
        gen = torch.Generator().manual_seed(seed)
        N, K = w.shape
        if dtype == torch.float16:  # keep y inside fp16's range (65504): overflow to inf is not what this checks
            w = w.float() / w.float().abs().max().clamp(min=1e-30)
        x = torch.randn(M, K, generator=gen).to(dtype)
        bias = torch.randn(N, generator=gen).to(dtype) if with_bias else None
        qw = fourbit.quantize(w, fmt)
        y = fourbit.linear(x, qw, bias)
        assert y.dtype == dtype and y.shape == (M, N)
        testing.assert_linear_close(y, x, fmt.dequantize_ref(fmt.quantize_ref(w)), bias, f"{name} linear")

    check()


@pytest.mark.parametrize("M", [1, 2, 3, 16, 17, 64, 100, 255])
@pytest.mark.parametrize("dtype", ACT)
def test_linear_shapes(M, dtype):
    """Odd M, N not a multiple of any tile, K at the group minimum and large, batched leading dims."""
    gen = torch.Generator().manual_seed(M)
    for N, K in ((1, 128), (37, 128), (129, 1024)):
        w = torch.randn(N, K, generator=gen)
        for name in ("int4", "nf4", "nvfp4", "mxfp4", "int8"):
            fmt = PRESETS[name]
            qw = fourbit.quantize(w, fmt)
            x = torch.randn(M, K, generator=gen).to(dtype)
            testing.assert_linear_close(fourbit.linear(x, qw), x, qw.dequantize(), name=f"{name} M={M} N={N}")
    x3 = torch.randn(2, 3, 128, generator=gen).to(dtype)
    qw = fourbit.quantize(torch.randn(9, 128, generator=gen), "nf4")
    y3 = fourbit.linear(x3, qw)
    assert y3.shape == (2, 3, 9)
    testing.assert_linear_close(y3, x3, qw.dequantize())


def test_linear_bound_can_fail():
    """The matmul check rejects a result that is off by far less than bf16 noise would suggest for fp32."""
    x, w = torch.randn(4, 256), torch.randn(8, 256)
    qw = fourbit.quantize(w, "int8")
    y = fourbit.linear(x, qw)
    y[1, 3] += 1e-3 * y.abs().max()
    with pytest.raises(AssertionError, match=r"worst at \(1, 3\)"):
        testing.assert_linear_close(y, x, qw.dequantize())


def test_linear_autograd():
    w, x = torch.randn(24, 128), torch.randn(3, 128, requires_grad=True)
    bias = torch.randn(24, requires_grad=True)
    qw = fourbit.quantize(w, "nf4")
    y = fourbit.linear(x, qw, bias)
    g = torch.randn_like(y)
    y.backward(g)
    wd = qw.dequantize()
    testing.assert_within_bound(x.grad, g.double() @ wd.double(), testing.matmul_error_bound(g, wd.T, torch.float32))
    testing.assert_bit_exact(bias.grad, g.sum(0), "bias grad")


# --- torch.library.opcheck and torch.compile ------------------------------------------------------------------------

def _op_samples():
    w = torch.randn(8, 128)
    out = []
    for name in ("int4", "int4_sym", "nf4", "nvfp4", "mxfp4", "int8_asym"):
        qw = fourbit.quantize(w, name)
        args = qw.op_args()
        fmt = qw.format
        out += [
            (OPS.quantize, (w, fmt.name, fmt.variant, fmt.group(128))),
            (OPS.dequantize, (*args, torch.bfloat16)),
            (OPS.linear, (torch.randn(3, 128), *args, torch.randn(8))),
            (OPS.linear, (torch.randn(2, 128, requires_grad=True), *args, None)),
        ]
    codes = torch.randint(0, 16, (4, 10), dtype=torch.uint8)
    out += [(OPS.pack_nibbles, (codes,)), (OPS.unpack_nibbles, (pack_nibbles_ref(codes),))]
    return out


@pytest.mark.parametrize("op,args", _op_samples(), ids=lambda v: getattr(v, "__name__", ""))
def test_opcheck(op, args):
    fp8 = any(isinstance(a, torch.Tensor) and a.dtype in (torch.float8_e4m3fn, torch.float8_e8m0fnu) for a in args)
    # opcheck's test_schema perturbs inputs with arithmetic that float8 tensors lack; the schema is the same op's,
    # so it is checked on the float32-scale samples and the other three checks run everywhere
    utils = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic") if fp8 else \
        torch.library._OPCHECK_DEFAULT_UTILS if hasattr(torch.library, "_OPCHECK_DEFAULT_UTILS") else \
        ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(op, args, test_utils=utils)


def test_torch_compile_fullgraph():
    qw = fourbit.quantize(torch.randn(32, 128), "nvfp4")

    def f(x, bias):
        return torch.nn.functional.silu(fourbit.linear(x, qw, bias)) * 2

    x, bias = torch.randn(5, 128), torch.randn(32)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    testing.assert_bit_exact(compiled(x, bias), f(x, bias), "compiled")


# --- bad input: clear errors naming the argument and the rule -------------------------------------------------------

def _linear_args(**over):
    qw = fourbit.quantize(torch.randn(16, 128), "int4")
    q, s, z, g, lut, G = qw.op_args()
    a = dict(x=torch.randn(2, 128), qdata=q, scales=s, zeros=z, global_scale=g, lut=lut, group_size=G, bias=None)
    a.update(over)
    return a


@pytest.mark.parametrize("over,exc,msg", [
    (dict(x=torch.randn(2, 128, dtype=torch.float64)), TypeError, "x must have dtype"),
    (dict(x=torch.randn(2, 100)), ValueError, r"x must have shape \[..., K=128\]"),
    (dict(x=torch.randn(0, 128)), ValueError, "M = 0"),
    (dict(x=torch.randn(128, 2).T), ValueError, "x must be contiguous"),
    (dict(x=torch.randn(2 * 128 + 1)[1:].view(2, 128)), ValueError, "16-byte boundary"),
    (dict(group_size=96), ValueError, "multiple of group_size=96"),
    (dict(scales=torch.ones(16, 3)), ValueError, r"scales must have shape \(16, 1\)"),
    (dict(scales=torch.ones(16, 1, dtype=torch.float16)), TypeError, "scales must have dtype"),
    (dict(qdata=torch.zeros(16, 64, dtype=torch.int32)), TypeError, "qdata must have dtype"),
    (dict(bias=torch.randn(15)), ValueError, r"bias must have shape \(16,\)"),
    (dict(bias=torch.randn(16, dtype=torch.float16)), TypeError, "bias must have x's dtype"),
    (dict(lut=torch.zeros(8)), ValueError, "lut must hold 16 entries"),
    (dict(zeros=torch.zeros(3, dtype=torch.uint8)), ValueError, "zeros must be empty or have shape"),
])
def test_linear_rejects_bad_input(over, exc, msg):
    a = _linear_args(**over)
    with pytest.raises(exc, match=msg):
        OPS.linear(*a.values())
    # the fake implementation says the same under torch.compile tracing (dynamo wraps it in its own error type)
    torch._dynamo.reset()
    with pytest.raises(Exception, match=msg):
        torch.compile(lambda *t: OPS.linear(*t), fullgraph=True, backend="aot_eager")(*a.values())


@pytest.mark.parametrize("w,fmt,exc,msg", [
    (torch.randn(3, 200), "int4", ValueError, "multiple of the group size 128"),
    (torch.randn(3, 48), "mxfp4", ValueError, "multiple of the group size 32"),  # N*K = 144: no whole groups
    (torch.randn(16, 200), "int4_sym", ValueError, "gcd"),  # groups across rows would need sub-groups of 8
    (torch.randn(4, 0), "nf4", ValueError, "non-empty"),
    (torch.randn(128), "nf4", ValueError, "2-D"),
    (torch.randn(4, 64), "fp4", ValueError, "no bare 'fp4'"),
    (torch.randn(4, 64), "int3", ValueError, "unknown format"),
])
def test_quantize_rejects_bad_input(w, fmt, exc, msg):
    with pytest.raises(exc, match=msg):
        fourbit.quantize(w, fmt)


@pytest.mark.parametrize("args,exc,msg", [
    ((torch.randn(4, 64, dtype=torch.float64), "int4", "asym", 32), TypeError, "w must have dtype"),
    ((torch.randn(64, 4).T, "int4", "asym", 2), ValueError, "w must be contiguous"),
    ((torch.randn(4, 64), "int4", "floor", 32), ValueError, "variant for int4"),
    ((torch.randn(4, 64), "nvfp4", "", 32), ValueError, "fixed at 16"),
    ((torch.randn(4, 64), "int4", "asym", 48), ValueError, "multiple of group_size=48"),
    ((torch.randn(4, 64), "fp4", "", 16), ValueError, "fmt must be one of"),
])
def test_quantize_op_rejects_bad_input(args, exc, msg):
    with pytest.raises(exc, match=msg):
        OPS.quantize(*args)


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="last dimension must be even"):
        OPS.pack_nibbles(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="codes must have dtype"):
        OPS.pack_nibbles(torch.zeros(4, dtype=torch.int32))


def test_linear_out_writes_callers_buffer():
    qw = fourbit.quantize(torch.randn(24, 128), "mxfp4")
    x = torch.randn(2, 3, 128, dtype=torch.bfloat16)
    guard = torch.full((2 * 3 * 24 + 16,), 7.0, dtype=torch.bfloat16)
    out = guard[:2 * 3 * 24].view(2, 3, 24)
    assert OPS.linear_out(x, *qw.op_args(), None, out) is None
    testing.assert_bit_exact(out, fourbit.linear(x, qw), "out")
    assert torch.equal(guard[2 * 3 * 24:], torch.full((16,), 7.0, dtype=torch.bfloat16))  # nothing past the end
    with pytest.raises(TypeError, match="out must have x's dtype"):
        OPS.linear_out(x, *qw.op_args(), None, torch.empty(2, 3, 24))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 24\)"):
        OPS.linear_out(x, *qw.op_args(), None, torch.empty(6, 24, dtype=torch.bfloat16))
    torch.library.opcheck(OPS.linear_out, (x, *qw.op_args(), None, torch.empty_like(out)),
                          test_utils=("test_faketensor", "test_aot_dispatch_dynamic"))


def test_eager_plan_cache_is_keyed_on_the_stored_tensors():
    """fourbit.ops.eager: a plan is checked once and reused only while the weight's tensors are the same objects;
    CPU tensors never take the fast path."""
    from fourbit.ops import eager
    qw = fourbit.quantize(torch.randn(32, 256), "int4")
    p = qw.eager_plan()
    assert qw.eager_plan() is p and (p.N, p.K) == (32, 256)
    qw.qdata = qw.qdata.clone()
    assert qw.eager_plan() is not p
    dq = fourbit.quantize(torch.randn(32, 256), "nf4_dq")  # scales decoded per call: never cached
    assert dq.eager_plan() is not dq.eager_plan()
    assert not eager.usable(torch.randn(2, 256), None)
    with pytest.raises(ValueError, match="scales must have shape"):
        eager.Plan((qw.qdata, qw.scales[:, :1], torch.empty(0, dtype=torch.uint8), torch.empty(0),
                    qw.op_args()[4], 128))
