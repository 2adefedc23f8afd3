"""Launch plumbing shared by the launchers: interpreter detection, exact-arithmetic launch options, dtype maps."""
import os

import torch
import triton
import triton.language as tl


def interpreting() -> bool:
    """True when Triton runs kernels in its numpy interpreter (TRITON_INTERPRET=1)."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None and hasattr(knobs, "runtime"):
        return bool(getattr(knobs.runtime, "interpret", False))
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


#: launch options for bit-exact kernels: no FMA contraction (the references round every product and sum)
EXACT = {"enable_fp_fusion": False}

#: torch activation dtype -> Triton dtype
TL_DTYPE = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    """A one-byte float tensor (float8_e4m3fn / float8_e8m0fnu) seen as uint8; other tensors unchanged."""
    return t.view(torch.uint8) if t.is_floating_point() and t.element_size() == 1 else t


def scale_kind(scales: torch.Tensor) -> int:
    """codecs.SCALE_F32 / SCALE_E4M3 / SCALE_E8M0 for a scales tensor."""
    return {torch.float32: 0, torch.float8_e4m3fn: 1, torch.float8_e8m0fnu: 2}[scales.dtype]


def triton_version() -> tuple:
    """(major, minor) of the installed Triton."""
    return tuple(int(p) for p in triton.__version__.split(".")[:2])
