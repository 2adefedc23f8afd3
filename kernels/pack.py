"""pack_nibbles / unpack_nibbles: two 4-bit codes per byte, element 2i in the LOW nibble (fourbit, OCP, Triton)."""
import torch
import triton
import triton.language as tl

BLOCK = 1024  # bytes per program


@triton.jit
def _pack_kernel(codes_ptr, out_ptr, n_bytes, BLOCK: tl.constexpr):
    """codes_ptr: uint8 [2 * n_bytes] flat codes 0..15; out_ptr: uint8 [n_bytes]; byte i = c[2i] | c[2i+1] << 4."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_bytes
    lo = tl.load(codes_ptr + 2 * offs, mask=mask, other=0)
    hi = tl.load(codes_ptr + 2 * offs + 1, mask=mask, other=0)
    tl.store(out_ptr + offs, lo | (hi << 4), mask=mask)


@triton.jit
def _unpack_kernel(packed_ptr, out_ptr, n_bytes, BLOCK: tl.constexpr):
    """packed_ptr: uint8 [n_bytes]; out_ptr: uint8 [2 * n_bytes] codes: out[2i] = low nibble, out[2i+1] = high."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_bytes
    b = tl.load(packed_ptr + offs, mask=mask, other=0)
    tl.store(out_ptr + 2 * offs, b & 0xF, mask=mask)
    tl.store(out_ptr + 2 * offs + 1, b >> 4, mask=mask)


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 2n] contiguous codes 0..15 -> uint8 [..., n], element 2i in the low nibble."""
    out = torch.empty(*codes.shape[:-1], codes.shape[-1] // 2, dtype=torch.uint8, device=codes.device)
    if out.numel():
        _pack_kernel[(triton.cdiv(out.numel(), BLOCK),)](codes, out, out.numel(), BLOCK=BLOCK)
    return out


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [..., n] contiguous -> uint8 [..., 2n] codes (inverse of pack_nibbles)."""
    out = torch.empty(*packed.shape[:-1], packed.shape[-1] * 2, dtype=torch.uint8, device=packed.device)
    if packed.numel():
        _unpack_kernel[(triton.cdiv(packed.numel(), BLOCK),)](packed, out, packed.numel(), BLOCK=BLOCK)
    return out
