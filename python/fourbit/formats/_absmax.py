"""Codebook formats with an absmax block scale (nf4 and bnb_fp4), bit-compatible with bitsandbytes 0.50.2 (CPU).

Quantize, per block of G elements along K: a = max|x| (stored as is, float32); t = clamp(x * (1 / max(a, 1e-38)),
-1, 1) in float32 (bitsandbytes multiplies by the reciprocal, it does not divide); the code is the nearest codebook
entry, an exact tie going to the LOWER value (torch.bucketize on float32 midpoints, right=False).
Dequantize: codebook[code] * a.

Double quant (bitsandbytes compress_statistics): offset = mean(a); the absmax values minus the offset are quantized
in blocks of 256 with the signed 8-bit dynamic map (the same absmax / reciprocal / nearest rule); the stored block
scale becomes dynamic_map[q] * nested_absmax + offset.
"""
from __future__ import annotations

from dataclasses import dataclass
import torch

from ._base import QuantParts, U32, bad_groups, expand_groups, finite_or_zero, grouped, poison_bound, slack
from ._codebook import half_gap, nearest_index

NESTED_BLOCK = 256  # bitsandbytes quantizes the absmax statistics in blocks of 256
_TINY = 1e-38  # bitsandbytes clamps the absmax to this before taking its reciprocal


@dataclass
class DoubleQuant:
    """Stored form of double-quantized block scales: codes uint8 [n], absmax float32 [ceil(n / 256)], offset [1]."""

    codes: torch.Tensor
    absmax: torch.Tensor
    offset: torch.Tensor

    def decode(self) -> torch.Tensor:
        """float32 [n]: the block scales the kernels use."""
        v = DYNAMIC_MAP.to(self.codes.device)[self.codes.long()]
        n = v.numel()
        v = v * self.absmax.repeat_interleave(NESTED_BLOCK)[:n]
        return v + self.offset


def dynamic_map() -> torch.Tensor:
    """The signed 8-bit dynamic map of bitsandbytes (Dettmers 2015): 256 sorted float32 values in [-1, 1].

    For exponent e = 0..6, 2^e linearly spaced means cover (0.1, 1] * 10^(e-6), with both signs; then 0 and 1.
    Each decade's values are midpoints of linspace(0.1, 1, 2^e + 1) in float32, times 10^(e-6) in float32.
    """
    vals = [torch.zeros(1), torch.ones(1)]
    for e in range(7):
        edges = torch.linspace(0.1, 1.0, 2**e + 1, dtype=torch.float32)
        mids = (edges[:-1] + edges[1:]) / 2.0
        decade = 10.0 ** (e - 6)
        vals += [mids * decade, mids * -decade]
    return torch.sort(torch.cat(vals)).values


DYNAMIC_MAP = dynamic_map()


def blockwise_codes(x: torch.Tensor, absmax: torch.Tensor, sorted_vals: torch.Tensor) -> torch.Tensor:
    """Sorted-codebook index of each element, x [..., G] and absmax [...] in float32 (bitsandbytes' rule)."""
    inv = 1.0 / absmax.clamp(min=_TINY)
    t = torch.clamp(x * inv[..., None], -1.0, 1.0)
    return nearest_index(t, sorted_vals, ties="lower")


def quantize(w: torch.Tensor, G: int, codebook: torch.Tensor, double_quant: bool) -> QuantParts:
    """Reference for nf4 / bnb_fp4. Returns codes uint8 [N, K], scales float32 [N, K/G] (decoded when double
    quantized), and `nested` (the stored DoubleQuant) when double_quant."""
    wg = grouped(w, G)
    bad = bad_groups(wg)
    wf = finite_or_zero(wg)
    absmax = wf.abs().amax(dim=-1)
    order = torch.sort(codebook, stable=True).indices
    idx = blockwise_codes(wf, absmax, codebook[order])
    codes = order[idx].to(torch.uint8)
    zero_code = int(torch.nonzero(codebook == 0)[0])
    codes = torch.where(bad[..., None], torch.full((), zero_code, dtype=torch.uint8), codes).reshape(w.shape)
    scales = torch.where(bad, torch.full((), float("nan")), absmax)
    parts = QuantParts(codes=codes, scales=scales)
    if double_quant:
        nested = compress(scales.reshape(-1))
        parts.scales = nested.decode().reshape(scales.shape)
        parts.nested = nested  # type: ignore[attr-defined]
    return parts


def compress(a: torch.Tensor) -> DoubleQuant:
    """Double quant of float32 block scales a [n]. offset = mean of the finite scales. A NaN scale (a NaN/Inf
    group) makes its whole nested block's absmax NaN: 8-bit dynamic codes cannot hold NaN, so up to 256 groups
    around it dequantize to NaN, never to a wrong finite value."""
    finite = torch.isfinite(a)
    offset = a.mean() if bool(finite.all()) else a[finite].sum() / finite.sum().clamp(min=1)
    n = a.numel()
    d = torch.nn.functional.pad(a - offset, (0, (-n) % NESTED_BLOCK)).reshape(-1, NESTED_BLOCK)
    dz = torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0)
    nabs = dz.abs().amax(dim=-1)  # padding with 0 leaves a partial block's absmax unchanged
    # bitsandbytes' CPU blockwise quantizer divides (it does not multiply by the reciprocal) and gives an all-zero
    # block code 0. Its binary search is approximate: it can miss the nearest entry (0 became code 131 = 2.1e-5,
    # and a near-tie went to the farther neighbour, in bitsandbytes 0.50.2); we keep the true nearest, so nested
    # codes can differ from its in those cases, always towards the nearer value. The test pins this.
    t = dz / nabs.clamp(min=_TINY)[..., None]
    q = nearest_index(t, DYNAMIC_MAP, ties="lower")
    q = torch.where((nabs == 0)[..., None], torch.zeros((), dtype=q.dtype), q).reshape(-1)[:n].to(torch.uint8)
    nabs = torch.where(torch.isfinite(d).all(dim=-1), nabs, torch.full((), float("nan")))
    return DoubleQuant(codes=q, absmax=nabs, offset=offset.reshape(1).float())


def error_bound(w: torch.Tensor, G: int, codebook: torch.Tensor, parts: QuantParts) -> torch.Tensor:
    """Per element: a * half_gap(t) (round to nearest on the codebook, t = x / a in [-1, 1]), plus, with double
    quant, |a' - a| (the stored scale a' times a code of magnitude <= 1 misses a * code by at most |a' - a|),
    plus float32 slack (reciprocal, product, dequant product)."""
    wg = grouped(w, G)
    bad = bad_groups(wg)
    wf = finite_or_zero(wg)
    a = wf.abs().amax(dim=-1)
    t = wf / a.clamp(min=_TINY)[..., None]
    bound = a[..., None] * half_gap(t, torch.sort(codebook).values)
    # absmax below 1e-38: codes are chosen relative to 1e-38 but decoded with a (bitsandbytes' clamp), so only
    # |x| <= a and |codebook * a| <= a hold: at most 2a
    bound = torch.where((a < _TINY)[..., None], 2 * a[..., None], bound).reshape(w.shape).float()
    bound = bound + expand_groups((parts.scales.float() - a).abs().nan_to_num(0.0), G)
    return poison_bound(bound + slack(w.float(), bound) + 4 * U32 * expand_groups(a, G), bad, G)
