"""Shared test setup: hypothesis profiles and the GPU marker.

CI runs the "ci" profile (at least 200 examples per property, as the project requires); FOURBIT_HYPOTHESIS=dev
gives a quick local run.
"""
import os

import torch

# Without a GPU the Triton kernels run under the interpreter. TRITON_INTERPRET must be set before anything imports
# triton (triton.language decorates its own helpers at import, and torch.compile in other test files imports it),
# so it is set here, before any test module loads. (torch itself does not import triton.)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("FOURBIT_HYPOTHESIS", "ci"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
