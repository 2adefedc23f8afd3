"""The formats fourbit stores weights in: one small module per format, each a validated frozen dataclass with its
constants and plain-PyTorch FP32 references (quantize_ref, dequantize_ref, error_bound).

Nibble order, for every 4-bit format: element 2i in the LOW nibble, 2i+1 in the HIGH nibble (OCP, torch, Triton).
bitsandbytes' high-nibble-first order is a conversion (fourbit.layout.swap_nibbles), not another format.
"""
from __future__ import annotations

from typing import Dict, Type

from . import fp4_e2m1
from ._base import Format, QuantParts
from ._absmax import DoubleQuant
from .bnb_fp4 import BnbFP4
from .int4 import Int4
from .int8 import Int8
from .mxfp4 import MXFP4
from .nf4 import NF4
from .nvfp4 import NVFP4

#: format name -> config class
FORMATS: Dict[str, Type[Format]] = {c.name: c for c in (Int4, NF4, BnbFP4, NVFP4, MXFP4, Int8)}

#: named configurations (the main job and the tests iterate over these)
PRESETS: Dict[str, Format] = {
    "int4": Int4(group_size=128, symmetric=False),
    "int4_sym": Int4(group_size=128, symmetric=True),
    "nf4": NF4(block_size=64),
    "nf4_dq": NF4(block_size=64, double_quant=True),
    "bnb_fp4": BnbFP4(block_size=64),
    "nvfp4": NVFP4(),
    "mxfp4": MXFP4(scale_rule="floor"),
    "mxfp4_rceil": MXFP4(scale_rule="rceil"),
    "int8": Int8(symmetric=True),
    "int8_asym": Int8(symmetric=False),
}


def make_format(name: str, **params) -> Format:
    """Build a format config by exact name ("int4", "nf4", "bnb_fp4", "nvfp4", "mxfp4", "int8") or preset name."""
    if name in FORMATS:
        return FORMATS[name](**params)
    if name in PRESETS and not params:
        return PRESETS[name]
    known = sorted(set(FORMATS) | set(PRESETS))
    hint = " (there is no bare 'fp4': use nvfp4, mxfp4 or bnb_fp4)" if name.lower() == "fp4" else ""
    raise ValueError(f"unknown format {name!r}{hint}; known: {', '.join(known)}")


__all__ = ["Format", "QuantParts", "DoubleQuant", "FORMATS", "PRESETS", "make_format", "fp4_e2m1",
           "Int4", "NF4", "BnbFP4", "NVFP4", "MXFP4", "Int8"]
