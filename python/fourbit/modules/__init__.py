"""Modules: QuantLinear, the nn.Module over the fourbit ops."""
from .quant_linear import QuantLinear, STATE_DICT_DOC

__all__ = ["QuantLinear", "STATE_DICT_DOC"]
