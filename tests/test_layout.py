"""Byte layouts: nibble order conversions and the Blackwell 128x4 scale tiles, against independent formulations."""
from __future__ import annotations

import torch
from hypothesis import given, strategies as st

from fourbit import layout, testing


@given(st.integers(1, 300), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_blocked_scales_match_tile_reshape(R, C, seed):
    """The FORMATS.md offset formula vs the tile picture: pad to [128k, 4j], cut 128x4 tiles in row-major tile
    order, and inside a tile store row r at (r % 32) * 16 + (r // 32) * 4 (four 32-row slabs interleaved)."""
    s = torch.randint(0, 256, (R, C), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    Rp, Cp = -(-R // 128) * 128, -(-C // 4) * 4
    padded = torch.zeros(Rp, Cp, dtype=torch.uint8)
    padded[:R, :C] = s
    tiles = padded.view(Rp // 128, 128, Cp // 4, 4).permute(0, 2, 1, 3)  # [row tile, col tile, 128, 4]
    inner = tiles.reshape(Rp // 128, Cp // 4, 4, 32, 4).transpose(2, 3)  # [.., r % 32, r // 32, c]
    testing.assert_bit_exact(layout.to_blocked_scales(s), inner.flatten(), "blocked scales")
    testing.assert_bit_exact(layout.from_blocked_scales(layout.to_blocked_scales(s), R, C), s, "round trip")


def test_blocked_scales_keep_float8_bits():
    s = torch.randn(130, 5).abs().to(torch.float8_e4m3fn)
    back = layout.from_blocked_scales(layout.to_blocked_scales(s), 130, 5)
    testing.assert_bit_exact(back, s.view(torch.uint8), "e4m3 bytes")


def test_swap_nibbles_is_bitsandbytes_order():
    codes = torch.randint(0, 16, (6, 64), dtype=torch.uint8)
    ours = layout.pack_nibbles_ref(codes)
    bnb_order = (codes[:, 0::2] << 4) | codes[:, 1::2]  # bitsandbytes: element 2i in the HIGH nibble
    testing.assert_bit_exact(layout.swap_nibbles(ours), bnb_order, "swap")
    testing.assert_bit_exact(layout.swap_nibbles(bnb_order), ours, "swap back")
