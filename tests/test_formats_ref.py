"""The FP32 references themselves, checked against independent brute-force oracles and against bitsandbytes.

Kernels are tested against these references elsewhere; here each reference must agree with a second, differently
written definition (nearest value by exhaustive search, tie rules spelled out), so a wrong reference fails.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

import fourbit
from fourbit import testing
from fourbit.formats import PRESETS, fp4_e2m1, make_format
from fourbit.formats._absmax import DYNAMIC_MAP
from fourbit.formats.mxfp4 import scale_exponent
from fourbit.formats.nvfp4 import e4m3
from strategies import weights

E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def brute_e2m1(v: float) -> int:
    """Nearest of the 16 codes by exhaustive search; on a tie the even code (even mantissa) wins; |v|>6 -> 6."""
    mag = min(abs(v), 6.0)
    best = min(range(8), key=lambda c: (abs(E2M1_VALUES[c] - mag), c % 2))
    return best | (8 if math.copysign(1.0, v) < 0 else 0)


# --- fp4_e2m1 ------------------------------------------------------------------------------------------------------

def test_e2m1_all_codes_round_trip():
    codes = torch.arange(16, dtype=torch.uint8)
    vals = fp4_e2m1.decode(codes)
    assert vals.tolist() == E2M1_VALUES + [-v for v in E2M1_VALUES]
    assert torch.equal(fp4_e2m1.encode(vals), codes)  # -0.0 (code 8) keeps its sign bit


@pytest.mark.parametrize("tie,expected", [
    (0.25, 0.0),   # between 0 (code 0) and 0.5 (code 1): even code 0
    (0.75, 1.0),   # between 0.5 (code 1) and 1.0 (code 2): even code 2
    (1.25, 1.0),   # between 1.0 (code 2) and 1.5 (code 3): even code 2
    (1.75, 2.0),   # between 1.5 (code 3) and 2.0 (code 4): even code 4
    (2.5, 2.0),    # between 2 (code 4) and 3 (code 5): even code 4
    (3.5, 4.0),    # between 3 (code 5) and 4 (code 6): even code 6
    (5.0, 4.0),    # between 4 (code 6) and 6 (code 7): even code 6, so 5 does not saturate
])
def test_e2m1_ties_to_even(tie, expected):
    for sign in (1.0, -1.0):
        got = fp4_e2m1.decode(fp4_e2m1.encode(torch.tensor([sign * tie])))
        assert got.item() == sign * expected


def test_e2m1_saturates_and_keeps_sign():
    v = torch.tensor([5.0001, 7.0, 1e30, -1e30, -0.1, -0.0])
    assert fp4_e2m1.decode(fp4_e2m1.encode(v)).tolist() == [6.0, 6.0, 6.0, -6.0, -0.0, -0.0]
    assert fp4_e2m1.encode(torch.tensor([-0.1])).item() == 8


@given(st.floats(-8, 8, allow_nan=False, width=32))
def test_e2m1_matches_brute_force(v):
    assert fp4_e2m1.encode(torch.tensor([v])).item() == brute_e2m1(v)


def test_e2m1_near_every_tie():
    """One float32 ulp either side of each tie rounds to the nearer value, never by the tie rule."""
    for t in (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0):
        for v in (math.nextafter(t, 0), t, math.nextafter(t, 9)):
            v32 = torch.tensor([v], dtype=torch.float32)
            assert fp4_e2m1.encode(v32).item() == brute_e2m1(v32.item())


# --- E4M3 / E8M0 scale codecs --------------------------------------------------------------------------------------

ALL_E4M3 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()


def brute_e4m3(v: float) -> float:
    """Nearest finite E4M3 by exhaustive search, ties to the even code, saturating at 448."""
    finite = [(abs(float(x) - v), i % 2, float(x)) for i, x in enumerate(ALL_E4M3.tolist()) if math.isfinite(x)]
    return min(finite)[2] if abs(v) <= 448 else math.copysign(448.0, v)


@given(st.one_of(st.floats(0, 500, width=32), st.floats(0, 2.0**-6, width=32)))
def test_e4m3_encode_matches_brute_force(v):
    assert e4m3(torch.tensor([v])).float().item() == brute_e4m3(v)


def test_e4m3_boundaries():
    # max 448 and saturation; smallest subnormal 2^-9; 2^-10 is a tie between 0 and 2^-9 -> 0 (even)
    v = torch.tensor([448.0, 464.0, 1e9, 2.0**-9, 2.0**-10, 1.5 * 2.0**-10, 2.0**-6])
    assert e4m3(v).float().tolist() == [448.0, 448.0, 448.0, 2.0**-9, 0.0, 2.0**-9, 2.0**-6]


@pytest.mark.parametrize("rule", ["floor", "rceil"])
def test_mxfp4_scale_exponent_exact(rule):
    """Against float64 log2 on powers of two and their neighbours, subnormals and the clamp at -127/127."""
    vals = []
    for e in range(-149, 128):
        p = 2.0**e
        vals += [p, math.nextafter(p, 0), math.nextafter(p, math.inf), 6 * p, 6 * p * 1.0000001]
    x = torch.tensor(vals, dtype=torch.float32)
    x = x[torch.isfinite(x) & (x > 0)]
    got = scale_exponent(x, rule)
    xd = x.double()
    if rule == "floor":
        exp = torch.floor(torch.log2(xd)) - 2
    else:
        exp = torch.ceil(torch.log2((x / 6.0).double()))
    assert torch.equal(got, exp.clamp(-127, 127).to(torch.int32))
    assert scale_exponent(torch.zeros(1), rule).item() == -127


# --- bitsandbytes compatibility ------------------------------------------------------------------------------------

bnb_functional = pytest.importorskip("bitsandbytes.functional", reason="bitsandbytes is the NF4 oracle")


def test_dynamic_map_matches_bitsandbytes():
    testing.assert_bit_exact(DYNAMIC_MAP, bnb_functional.create_dynamic_map(), "dynamic map")


@given(st.sampled_from(["nf4", "bnb_fp4"]), st.booleans(), st.integers(1, 5), st.integers(1, 6),
       st.sampled_from([64, 128]), st.integers(0, 2**31 - 1), st.sampled_from(["randn", "ties", "zeros"]))
def test_absmax_formats_match_bitsandbytes(name, dq, n, kb, bs, seed, kind):
    """Codes, stored absmax (and double-quant pieces) and dequantized values, bit for bit."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, kb * bs, generator=gen)
    if kind == "ties":  # values at codebook midpoints times absmax hit bitsandbytes' tie rule
        fmt = make_format(name, block_size=bs)
        mids = torch.sort(fmt.codebook).values
        mids = (mids[:-1] + mids[1:]) / 2
        w = mids[torch.randint(0, 15, w.shape, generator=gen)]
        w[:, ::bs] = 1.0  # absmax exactly 1 so x * (1 / absmax) == x
    elif kind == "zeros":
        w[0, :bs] = 0
    fmt = make_format(name, block_size=bs, double_quant=dq)
    q, state = bnb_functional.quantize_4bit(w, blocksize=bs, quant_type="nf4" if name == "nf4" else "fp4",
                                            compress_statistics=dq)
    bnb_codes = fourbit.layout.unpack_nibbles_ref(fourbit.layout.swap_nibbles(q.flatten())).reshape(w.shape)
    parts = fmt.quantize_ref(w)
    testing.assert_bit_exact(parts.codes, bnb_codes, "codes")
    if dq:
        # nested 8-bit codes: equal wherever bitsandbytes picked a nearest dynamic-map entry; where its CPU binary
        # search did not (it is approximate: seen near 0 and on near-ties), ours must be strictly nearer
        nabs = state.state2.absmax.repeat_interleave(256)[: state.absmax.numel()]
        t = (fmt.replace(double_quant=False).quantize_ref(w).scales.flatten() - state.offset) / nabs
        ours = (DYNAMIC_MAP[parts.nested.codes.long()] - t).abs()
        theirs = (DYNAMIC_MAP[state.absmax.long()] - t).abs()
        same = parts.nested.codes == state.absmax
        assert bool((same | (ours < theirs)).all()), "a nested code differs from bitsandbytes without being nearer"
        testing.assert_bit_exact(parts.nested.absmax, state.state2.absmax, "nested absmax")
        testing.assert_bit_exact(parts.nested.offset.reshape(()), state.offset.reshape(()), "nested offset")
    else:
        testing.assert_bit_exact(parts.scales.flatten(), state.absmax, "absmax")
    bnb_deq = bnb_functional.dequantize_4bit(q, state)
    if dq:  # dequantize bitsandbytes' own stored pieces with our rule: bit-exact with its dequantize_4bit
        parts.nested.codes = state.absmax
        parts.scales = parts.nested.decode().reshape(parts.scales.shape)
    testing.assert_bit_exact(fmt.dequantize_ref(parts), bnb_deq, "dequantized")


def test_bnb_fp4_ties_go_to_lower_value():
    fmt = make_format("bnb_fp4", block_size=64)
    w = torch.zeros(1, 64)
    w[0, 0] = 1.0
    cb = fmt.codebook
    w[0, 1] = (cb[15] + cb[14]) / 2  # float32 midpoint of -3/12 and -2/12: exact tie, goes to -3/12 = -0.25
    w[0, 2] = (cb[6] + cb[7]) / 2  # float32 midpoint of 2/12 and 3/12: exact tie, goes to 2/12
    deq = fmt.dequantize_ref(fmt.quantize_ref(w))[0]
    assert deq[1].item() == pytest.approx(-0.25) and deq[2].item() == pytest.approx(2 / 12)


# --- every preset: the bound holds, and policies ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_reference_round_trip_within_bound(name):
    fmt = PRESETS[name]

    @given(weights(fmt))
    def check(w):
        testing.assert_quantization_error(fmt, w, fmt.dequantize_ref(fmt.quantize_ref(w)), name)

    check()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_bound_is_tight_enough_to_fail(name):
    """A dequantization off by one grid step must break the bound (the check can fail)."""
    fmt = PRESETS[name]
    w = torch.randn(4, 256, generator=torch.Generator().manual_seed(1))
    parts = fmt.quantize_ref(w)
    codes = parts.codes.clone()
    if fmt.bits == 4:  # the code farthest from the right one: an error of at least half the group's range
        lut = fmt.lut()
        codes[0, 3] = int(torch.argmax((lut - lut[codes[0, 3].long()]).abs()))
    else:  # five steps off
        codes[0, 3] = codes[0, 3] + (5 if codes[0, 3] < 100 else -5)
    parts.codes = codes
    with pytest.raises(AssertionError, match="exceed the bound"):
        testing.assert_quantization_error(fmt, w, fmt.dequantize_ref(parts), name)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_policy_poisons_only_its_group(name, bad):
    fmt = PRESETS[name]
    w = torch.randn(3, 256, generator=torch.Generator().manual_seed(2))
    clean = fmt.dequantize_ref(fmt.quantize_ref(w))
    w[1, 5] = bad
    deq = fmt.dequantize_ref(fmt.quantize_ref(w))
    G = fmt.group(256)
    poisoned = torch.zeros_like(w, dtype=torch.bool)
    if getattr(fmt, "double_quant", False):  # the NaN scale poisons its whole nested block of 256 scales
        poisoned[:] = True
    else:
        poisoned[1, (5 // G) * G:(5 // G + 1) * G] = True
    assert torch.isnan(deq[poisoned]).all()
    if not getattr(fmt, "double_quant", False):
        testing.assert_bit_exact(deq[~poisoned], clean[~poisoned], "other groups")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_all_zero_and_outlier_groups(name):
    fmt = PRESETS[name]
    w = torch.randn(2, 256, generator=torch.Generator().manual_seed(3))
    w[0] = 0
    w[1, 7] = 1e6
    deq = fmt.dequantize_ref(fmt.quantize_ref(w))
    assert torch.equal(deq[0], torch.zeros(256))
    testing.assert_quantization_error(fmt, w, deq, name)


def test_unknown_format_and_bad_params_are_named():
    with pytest.raises(ValueError, match="no bare 'fp4'"):
        make_format("fp4")
    with pytest.raises(ValueError, match="group_size must be one of"):
        make_format("int4", group_size=48)
    with pytest.raises(ValueError, match="scale_rule"):
        make_format("mxfp4", scale_rule="ceil")
    with pytest.raises(ValueError, match="multiple of the group size 128"):
        PRESETS["int4"].check_shape(4, 200)
