"""Round-to-nearest onto a sorted codebook, with an explicit rule for exact ties (shared by nf4, bnb_fp4, e2m1)."""
from __future__ import annotations

import torch


def midpoints(sorted_vals: torch.Tensor) -> torch.Tensor:
    """Decision bounds between neighbours, computed in float32 as (a + b) / 2 (what bitsandbytes does)."""
    v = sorted_vals.float()
    return (v[:-1] + v[1:]) / 2


def nearest_index(t: torch.Tensor, sorted_vals: torch.Tensor, ties: str) -> torch.Tensor:
    """Index into `sorted_vals` of the entry nearest to each element of t (float32).

    ties="lower": an exact tie picks the lower entry (bitsandbytes: torch.bucketize with right=False).
    ties="even": an exact tie picks the even index (OCP FP4 E2M1 round-half-to-even on the code).
    """
    b = midpoints(sorted_vals).to(t.device)
    idx = torch.bucketize(t, b, right=False)  # number of bounds strictly below t
    if ties == "even":
        tie = (t == b[idx.clamp(max=b.numel() - 1)]) & (idx % 2 == 1)
        idx = idx + tie.to(idx.dtype)
    elif ties != "lower":
        raise ValueError(f"ties must be 'lower' or 'even', got {ties!r}")
    return idx


def half_gap(t: torch.Tensor, sorted_vals: torch.Tensor) -> torch.Tensor:
    """Half the width of the codebook interval that holds t; beyond either end, the distance to that end.

    This is the worst-case round-to-nearest error at t: the largest error in error_bound derivations.
    """
    v = sorted_vals.double().to(t.device)
    td = t.double()
    hi = torch.bucketize(td, v, right=False).clamp(1, v.numel() - 1)
    gap = (v[hi] - v[hi - 1]) / 2
    below, above = td < v[0], td > v[-1]
    return torch.where(below, v[0] - td, torch.where(above, td - v[-1], gap))
