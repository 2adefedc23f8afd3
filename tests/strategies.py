"""Hypothesis strategies for weights: random shapes that fit a format, values with the cases that break kernels
(all-zero groups, one huge outlier, exact ties, tiny and huge magnitudes)."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from fourbit.formats import FORMATS, PRESETS


@st.composite
def weights(draw, fmt, max_rows: int = 6, max_groups: int = 4, special: bool = True):
    """A float32 [N, K] weight for fmt, K a multiple of its group (per-channel formats get K up to 96)."""
    G = fmt.group_size or draw(st.sampled_from([16, 32, 48, 96]))
    N = draw(st.integers(1, max_rows))
    K = G * draw(st.integers(1, max_groups))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    scale = 2.0 ** draw(st.integers(-30, 30))
    w = torch.randn(N, K, generator=gen) * scale
    if special:
        groups = w.view(N, K // G, G)
        kind = draw(st.sampled_from(["plain", "zero_group", "outlier", "ties", "constant", "tiny"]))
        r, g = draw(st.integers(0, N - 1)), draw(st.integers(0, K // G - 1))
        if kind == "zero_group":
            groups[r, g] = 0
        elif kind == "outlier":
            groups[r, g, draw(st.integers(0, G - 1))] *= 2.0 ** draw(st.integers(4, 20))
        elif kind == "ties":  # values on a half-step grid hit round-half-even ties of the integer/e2m1 grids
            groups[r, g] = torch.randint(-24, 25, (G,), generator=gen).float() * 0.25 * scale
        elif kind == "constant":
            groups[r, g] = scale
        elif kind == "tiny":
            groups[r, g] *= 2.0**-120
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))
    if dtype == torch.float16:
        w = (w / w.abs().max().clamp(min=1e-30) * 1000).to(dtype)  # stay inside fp16's range
    return w.to(dtype)


preset_names = st.sampled_from(sorted(PRESETS))


def nvfp4_underflow_weight():
    """A float32 weight whose nvfp4 s * g underflows to 0 in some blocks: amax 2688 * 2^-149 makes g = 2^-149, and
    blocks of +-2^-149, +-2 * 2^-149 and +-0 get s = E4M3(1 / 6) or 0.5, so s * g rounds to 0 (asserted, so the case
    can fail)."""
    t = 2.0**-149
    w = torch.tensor([[2688 * t] + [0.0] * 15, [t, 0.0, -0.0, -t] * 4, [-0.0, 3 * t, 0.0, -2 * t] * 4])
    s = FORMATS["nvfp4"]()._scales(w)[2]
    assert (s[1:].flatten() * 2.0**-149 == 0).all()  # only float32 gets here: bf16 and fp16 stop at 2^-133, 2^-24
    return w


def special_weights():
    """Deterministic inputs that break kernels: ties of every grid, zeros, subnormals, huge values, NaN / Inf."""
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(8, 256, generator=gen)
    w[0] = torch.arange(256).float() * 0.25 - 32  # e2m1 / integer half-step ties at scale 1
    w[1] = 0.0  # all-zero groups
    w[2, :128] *= 2.0**-140  # subnormal groups (nf4's 1e-38 clamp, E4M3 / E8M0 subnormal scales)
    w[3, 7] = 3e38  # outlier near float32 max
    w[4, 3] = float("nan")
    w[5, 200] = float("inf")
    w[6, 100] = -float("inf")
    w[7] = torch.tensor([6.0, 5.0, 3.5, 2.5, 1.75, 1.25, 0.75, 0.25] * 32) * torch.tensor([1.0, -1.0]).repeat(128)
    return w
