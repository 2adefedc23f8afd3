"""Shared test setup: hypothesis profiles, the GPU marker and test sharding.

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


# A second implementation of the hook (specname; pytest registers only names that start with pytest_), run last, so
# that -m / -k have deselected first and the shards split what would run.
@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_shard(config, items):
    """FOURBIT_TEST_SHARD=i/n keeps every n-th collected test from the i-th on, so that n calls run the suite between
    them (scripts/gpu_check.sh tests-a / tests-b: one device call may run 600 s). Neighbouring tests (a test's
    parameters) go to different shards, which keeps the shards' times close."""
    spec = os.environ.get("FOURBIT_TEST_SHARD")
    if not spec:
        return
    i, n = (int(v) for v in spec.split("/"))
    if not 0 <= i < n:
        raise pytest.UsageError(f"FOURBIT_TEST_SHARD={spec}: need i/n with 0 <= i < n")
    keep = [t for k, t in enumerate(items) if k % n == i]
    config.hook.pytest_deselected(items=[t for k, t in enumerate(items) if k % n != i])
    items[:] = keep
