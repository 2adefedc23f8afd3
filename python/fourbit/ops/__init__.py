"""Op layer: schemas and fakes (library.py), then one module per backend that registers its kernels."""
from . import library  # noqa: F401  (defines the ops)
from . import cpu  # noqa: F401  (registers the CPU kernels)
from . import cuda  # noqa: F401  (registers the CUDA kernels; Triton is imported on first use)
from . import w4a8  # noqa: F401  (the opt-in W4A8 op: FP8 activations x int4/mxfp4 weights)
