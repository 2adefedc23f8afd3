"""Blackwell code from fourbit.kernels.gemm_scaled, checked on a CPU machine: cross-compile the tl.dot_scaled kernel
with Triton >= 3.9 for capability 100 (sm_100a, tcgen05) and 120 (Triton picks sm_120a itself), disassemble the
cubin with cuobjdump (PyPI nvidia-cuda-cuobjdump) and look for the block-scaled MMA instructions.

What Triton 3.9 emits (seen here): W4A4 (act="fp4") -> UTCOMMA on 100 and OMMA.SF...E2M1.E2M1.E8 (mxfp4) /
...UE4M3.4X (nvfp4) on 120; weight-only bf16 activations (act="bf16") are not a block-scaled MMA kind, so Triton
upcasts the fp4 operand and issues UTCHMMA (100) / HMMA.BF16 (120); capability 90 gets bf16 HGMMA.
The compile runs in a subprocess so that a TRITON_INTERPRET=1 set by test_triton.py in this process cannot reach it.
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

triton = pytest.importorskip("triton")
if tuple(int(p) for p in triton.__version__.split(".")[:2]) < (3, 9):
    pytest.skip(f"Triton {triton.__version__} < 3.9 does not emit Blackwell block-scaled MMA", allow_module_level=True)

_COMPILE = r"""
import sys, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from fourbit.kernels import gemm_scaled as gs
cap, fmt, act, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "fp4", sys.argv[4]
sig = {"x_ptr": "*bf16", "q_ptr": "*u8", "s_ptr": "*u8", "g_ptr": "*fp32", "xa_ptr": "*fp32", "b_ptr": "*bf16",
       "y_ptr": "*bf16", "M": "i32", "N": "i32", "K": "i32"}
const = dict(FMT=fmt, B=16 if fmt == 3 else 32, ACT_FP4=act, HAS_BIAS=True, NATIVE=True, INTERP=False,
             BM=128, BN=128, BK=128)
sig.update({k: "constexpr" for k in const})
c = triton.compile(ASTSource(fn=gs._linear_scaled_kernel, signature=sig, constexprs=const),
                   target=GPUTarget("cuda", cap, 32), options={"num_warps": 8, "num_stages": 3})
open(out, "wb").write(c.asm["cubin"])
print([l.split()[-1] for l in c.asm["ptx"].splitlines() if l.startswith(".target")][0])
"""


def _cuobjdump() -> str:
    """The cuobjdump binary shipped by the PyPI package nvidia-cuda-cuobjdump (namespace package `nvidia`)."""
    nvidia = pytest.importorskip("nvidia", reason="pip install nvidia-cuda-cuobjdump")
    found = [p for d in nvidia.__path__ for p in glob.glob(os.path.join(d, "**", "bin", "cuobjdump"), recursive=True)]
    if not found:
        pytest.fail("nvidia-cuda-cuobjdump is not installed (it is in the test extra)")
    return found[0]


def sass(cap: int, fmt: int, act: str, tmp_path) -> tuple:
    """(ptx target, SASS text) of the dot_scaled kernel for capability cap (fmt 3 = nvfp4, 4 = mxfp4)."""
    cubin = str(tmp_path / f"k{cap}_{fmt}_{act}.cubin")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    r = subprocess.run([sys.executable, "-c", _COMPILE, str(cap), str(fmt), act, cubin], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    dump = subprocess.run([_cuobjdump(), "-sass", cubin], capture_output=True, text=True, check=True).stdout
    return r.stdout.strip().splitlines()[-1], dump


MMA = re.compile(r"\b(UTC\w*MMA[\.\w]*|OMMA[\.\w]*|HGMMA[\.\w]*|HMMA[\.\w]*)")


@pytest.mark.parametrize("fmt", [3, 4], ids=["nvfp4", "mxfp4"])
def test_sm100_w4a4_uses_tcgen05_block_scaled_mma(fmt, tmp_path):
    target, text = sass(100, fmt, "fp4", tmp_path)
    assert target == "sm_100a"
    assert re.search(r"\bUTC[QO]MMA", text), sorted(set(MMA.findall(text)))


@pytest.mark.parametrize("fmt,scale", [(3, "UE4M3"), (4, "E8")], ids=["nvfp4", "mxfp4"])
def test_sm120_w4a4_uses_omma_sf(fmt, scale, tmp_path):
    target, text = sass(120, fmt, "fp4", tmp_path)
    assert target == "sm_120a"
    ops = set(MMA.findall(text))
    assert any(o.startswith("OMMA.SF") and "E2M1.E2M1" in o and scale in o for o in ops), sorted(ops)


def test_bf16_activations_are_not_block_scaled(tmp_path):
    """Weight-only bf16 x fp4: Triton upcasts fp4 to bf16 and uses the bf16 tcgen05 MMA on sm_100a."""
    _, text = sass(100, 4, "bf16", tmp_path)
    ops = set(MMA.findall(text))
    assert any(o.startswith("UTCHMMA") for o in ops) and not any(o.startswith(("UTCQMMA", "UTCOMMA")) for o in ops)
