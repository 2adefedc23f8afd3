"""What every format shares: the validated config base class, the quantized-parts container and the generic
dequantization rule.

Layout is kept apart from the format: a format's reference works on *unpacked* codes ([N, K], one code per byte);
packing two 4-bit codes per byte (element 2i in the low nibble) is `fourbit.layout`'s job.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

# Float32 unit roundoff (2^-24): the slack terms of every error bound are multiples of it.
U32 = 2.0**-24


@dataclass
class QuantParts:
    """The stored pieces of a quantized [N, K] weight, codes unpacked.

    codes: uint8 [N, K] (4-bit code 0..15, or the unsigned 8-bit value) or int8 [N, K] (signed 8-bit value).
    scales: [N, K // G] float32, float8_e4m3fn or float8_e8m0fnu (group scales, row-major).
    zeros: uint8 [N, K // G] integer zero points, or None.
    global_scale: float32 [1] per-tensor scale, or None.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: Optional[torch.Tensor] = None
    global_scale: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class Format:
    """Base of the format configs. Subclasses are frozen dataclasses that validate their fields.

    The kernels see a format only through `op_name`, `variant`, `group(K)`, `lut()` and the dtypes below, so a new
    format needs a new module here and, for quantize, one rule in the native kernel.
    """

    name: ClassVar[str]  # exact name: int4, nf4, bnb_fp4, nvfp4, mxfp4, int8
    bits: ClassVar[int]  # 4 or 8 bits per stored code
    scale_dtype: ClassVar[torch.dtype] = torch.float32
    has_zeros: ClassVar[bool] = False
    has_global_scale: ClassVar[bool] = False

    # --- what the ops need -------------------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        """Sub-rule passed to the quantize op (e.g. "sym"/"asym", "floor"/"rceil"); "" when the format has one."""
        return ""

    @property
    def group_size(self) -> Optional[int]:
        """Elements per scale along K; None means one group per row (per-channel)."""
        raise NotImplementedError

    def group(self, K: int) -> int:
        """The group size for a row of K elements."""
        return K if self.group_size is None else self.group_size

    def lut(self) -> torch.Tensor:
        """float32 [16]: the value of each 4-bit code before scaling; empty for 8-bit formats."""
        return torch.empty(0, dtype=torch.float32)

    def code_dtype(self) -> torch.dtype:
        return torch.uint8

    def check_shape(self, N: int, K: int) -> None:
        """Raise ValueError naming the rule if an [N, K] weight cannot take this format.

        Groups are G consecutive elements of the row-major weight (bitsandbytes' convention). When K is a multiple
        of G they lie within rows; otherwise they run across row ends, which needs N * K to be a multiple of G and
        a kernel-side sub-group, gcd(K, G), that splits no group (see flat_layout)."""
        G = self.group(K)
        if N <= 0 or K <= 0:
            raise ValueError(f"{self.name}: weight shape [N={N}, K={K}] must be non-empty")
        if (N * K) % G:
            raise ValueError(f"{self.name}: K={K} (in_features) must be a multiple of the group size {G}, or "
                             f"N*K={N * K} must be (groups then run across rows)")
        if K % G and math.gcd(K, G) % 16:
            raise ValueError(f"{self.name}: K={K} is not a multiple of the group size {G}, and groups across rows "
                             f"need gcd(K, G) = {math.gcd(K, G)} to be a multiple of 16")
        if self.bits == 4 and K % 2:
            raise ValueError(f"{self.name}: K={K} must be even to pack two 4-bit codes per byte")

    def kernel_group(self, K: int) -> int:
        """The group size the kernels see: G, or gcd(K, G) when groups run across rows (each such sub-group lies in
        one row and one group, so the kernels stay per-row; its scale is its group's, repeated)."""
        G = self.group(K)
        return G if K % G == 0 else math.gcd(K, G)

    # --- FP32 references -----------------------------------------------------------------------------------------
    def quantize_ref(self, w: torch.Tensor) -> QuantParts:
        """Plain-PyTorch float32 reference of quantize. w: [N, K] float tensor (any float dtype, CPU)."""
        raise NotImplementedError

    def dequantize_ref(self, p: QuantParts) -> torch.Tensor:
        """Plain-PyTorch float32 reference of dequantize: v = ((lut[code] - z) * s) * g, rounding after each step."""
        return dequantize_generic(p, self.lut(), self.group(p.codes.shape[1]))

    def error_bound(self, w: torch.Tensor) -> torch.Tensor:
        """Per-element worst-case |dequantize(quantize(w)) - w| for this input (see each format's derivation).

        Elements of groups that hold a NaN or Inf get +inf (those groups dequantize to NaN by policy).
        """
        raise NotImplementedError

    def replace(self, **changes) -> "Format":
        return dataclasses.replace(self, **changes)


# --- shared helpers ------------------------------------------------------------------------------------------------

def grouped(w: torch.Tensor, G: int) -> torch.Tensor:
    """View [N, K] as [N, K // G, G] in float32 (groups run along K within a row)."""
    N, K = w.shape
    return w.float().reshape(N, K // G, G)


def bad_groups(wg: torch.Tensor) -> torch.Tensor:
    """bool [N, K // G]: groups holding a NaN or Inf (their scale becomes NaN, their codes the zero code)."""
    return ~torch.isfinite(wg).all(dim=-1)


def finite_or_zero(wg: torch.Tensor) -> torch.Tensor:
    """Groups with their non-finite elements replaced by 0, so statistics of the other groups stay clean."""
    return torch.where(torch.isfinite(wg), wg, torch.zeros((), dtype=wg.dtype))


def nonzero_scale(s: torch.Tensor) -> torch.Tensor:
    """A zero scale (an all-zero group, or one that underflowed) becomes 1: codes then all round to 0."""
    return torch.where(s == 0, torch.ones((), dtype=s.dtype), s)


def expand_groups(t: torch.Tensor, G: int) -> torch.Tensor:
    """[N, K // G] -> [N, K]: one value per element, repeated along its group."""
    return t.repeat_interleave(G, dim=1)


def dequantize_generic(p: QuantParts, lut: torch.Tensor, G: int) -> torch.Tensor:
    """The one dequantization rule every kernel implements, in float32 and in this order."""
    if lut.numel():
        v = lut.to(p.codes.device)[p.codes.long()]
    else:
        v = p.codes.float()
    if p.zeros is not None:
        v = v - expand_groups(p.zeros.float(), G)
    v = v * expand_groups(p.scales.float(), G)
    if p.global_scale is not None:
        v = v * p.global_scale.float()
    return v


def slack(x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """Floating-point slack added to a rounding bound: the reference divides, multiplies and converts in float32
    (at most ~3 roundings of relative size 2^-24 on values of size |x| + bound), plus the smallest subnormal."""
    return 4 * U32 * (x.abs() + bound) + 2.0**-149


def poison_bound(bound: torch.Tensor, bad: torch.Tensor, G: int) -> torch.Tensor:
    """Set the bound of every element of a NaN/Inf group to +inf."""
    return torch.where(expand_groups(bad, G), torch.full((), float("inf")), bound)
