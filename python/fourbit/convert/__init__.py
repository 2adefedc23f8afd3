"""Converters: swap fourbit QuantLinear modules into any PyTorch or Hugging Face model."""
from .quantize_ import QuantConfig, ConversionReport, quantize_, model_bytes

__all__ = ["QuantConfig", "ConversionReport", "quantize_", "model_bytes"]
