"""fourbit: 4-bit (and 8-bit) weight formats with FP32 references, native kernels and torch ops.

Flow: kernels (csrc/, kernels/) -> launchers (fourbit._C via ops/_native.py) -> ops (fourbit.ops, torch.library)
-> functional API and QuantizedWeight (this module) -> modules and converters.
"""
from . import formats, layout, ops  # noqa: F401  (ops registers torch.ops.fourbit.*)
from .formats import FORMATS, PRESETS, Format, make_format
from .quantized import QuantizedWeight, dequantize, linear, quantize
from .modules import QuantLinear
from .convert import QuantConfig, quantize_
from . import testing  # noqa: E402,F401

__version__ = "0.1.0"

# Hugging Face transformers: register quant method "fourbit" lazily (no transformers import here)
from .convert import _hf_hook  # noqa: E402

_hf_hook.install()


def __getattr__(name):  # fourbit.FourbitConfig / fourbit.FourbitHfQuantizer / fourbit.hf, imported on first use
    if name in ("FourbitConfig", "FourbitHfQuantizer"):
        from .convert import hf
        return getattr(hf, name)
    if name == "hf":
        from .convert import hf
        return hf
    raise AttributeError(f"module 'fourbit' has no attribute {name!r}")

__all__ = ["formats", "layout", "ops", "testing", "FORMATS", "PRESETS", "Format", "make_format",
           "QuantizedWeight", "quantize", "dequantize", "linear", "QuantLinear", "QuantConfig", "quantize_"]
