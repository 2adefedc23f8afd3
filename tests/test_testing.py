"""fourbit.testing's assertions must fail when they should, and say where and by how much."""
from __future__ import annotations

import pytest
import torch

from fourbit import testing


def test_bit_exact_reports_first_mismatch():
    a = torch.arange(12.0).reshape(3, 4)
    b = a.clone()
    b[2, 1] += 2.0**-20
    with pytest.raises(AssertionError, match=r"1 of 12 elements differ; first at index \(2, 1\)"):
        testing.assert_bit_exact(a, b)
    with pytest.raises(AssertionError, match="differ"):  # -0.0 and 0.0 are different bits
        testing.assert_bit_exact(torch.tensor([0.0]), torch.tensor([-0.0]))
    testing.assert_bit_exact(torch.tensor([float("nan")]), -torch.tensor([float("nan")]))  # any NaN matches
    with pytest.raises(AssertionError, match="expected torch.float32"):
        testing.assert_bit_exact(a.double(), a)


def test_within_bound_reports_worst_element():
    e = torch.zeros(4, 5)
    a = e.clone()
    a[1, 2], a[3, 4] = 0.5, 2.0
    with pytest.raises(AssertionError, match=r"worst at \(3, 4\).*bound 1.000e\+00 \(2x\)"):
        testing.assert_within_bound(a, e, torch.ones(4, 5))
    testing.assert_within_bound(a, e, torch.full((4, 5), 2.0))


def test_within_bound_nan_must_match():
    with pytest.raises(AssertionError, match="NaN mismatch"):
        testing.assert_within_bound(torch.tensor([float("nan")]), torch.tensor([1.0]), torch.tensor([1e9]))
    testing.assert_within_bound(torch.tensor([float("nan")]), torch.tensor([float("nan")]), torch.tensor([0.0]))


def test_matmul_bound_scales_with_k_and_dtype():
    x, w = torch.ones(1, 1024), torch.ones(3, 1024)
    b32 = testing.matmul_error_bound(x, w, torch.float32)
    b16 = testing.matmul_error_bound(x, w, torch.bfloat16)
    assert torch.all(b32 < b16)  # bf16 output rounding dominates
    assert b32[0, 0] == pytest.approx(1.01 * 1024 * 2.0**-24 * 1024 + 2.0**-24 * 1024 * 2, rel=1e-3)
