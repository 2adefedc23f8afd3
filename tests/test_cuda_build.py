"""CPU-only checks of csrc/cuda: every .cu file compiles standalone with nvcc for the four target architectures
(sm_90a, sm_100a, sm_120a, sm_121a) without large register spills (> 64 bytes) in the GEMV, without spills or
serialized wgmma in the Hopper tensor-core GEMM, and the sm_120a / sm_121a SASS of the W4A4
kernel holds the block-scaled MMA (OMMA.SF) while sm_90a's holds the bf16 fallback (HMMA). Skips, naming the
reason, when nvcc (or, for the SASS check, cuobjdump + nvdisasm: PyPI nvidia-cuda-cuobjdump and
nvidia-cuda-nvdisasm) is missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "csrc" / "cuda"
ARCHS = ["90a", "100a", "120a", "121a"]
FLAGS = ["-O3", "--expt-relaxed-constexpr", "-std=c++17", "-lineinfo"]


def _nvcc():
    return shutil.which("nvcc") or (shutil.which("nvcc", path="/usr/local/cuda/bin"))


def _tool_dir():
    """Directory holding cuobjdump and nvdisasm (PATH, the CUDA toolkit, or the PyPI nvidia/cu13/bin)."""
    cands = [os.path.dirname(shutil.which("cuobjdump") or ""), "/usr/local/cuda/bin"]
    try:
        import nvidia  # PyPI nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm
        cands += [os.path.join(p, sub, "bin") for p in nvidia.__path__ for sub in ("cu13", "cuda_cuobjdump")]
    except ImportError:
        pass
    for d in cands:
        if d and os.path.exists(os.path.join(d, "cuobjdump")) and os.path.exists(os.path.join(d, "nvdisasm")):
            return d
    return None


NVCC = _nvcc()
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found: the CUDA kernels are not built here")


def _compile(src: Path, arch: str, out: Path, extra=()):
    cmd = [NVCC, "-c", str(src), "-o", str(out), f"-gencode=arch=compute_{arch},code=sm_{arch}", *FLAGS,
           "-I", str(ROOT / "csrc"), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr[-4000:]}"
    return r.stderr


@pytest.fixture(scope="module")
def w4a4_objects(tmp_path_factory):
    d = tmp_path_factory.mktemp("w4a4")
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda a: _compile(CUDA_DIR / "w4a4.cu", a, d / f"w4a4_{a}.o"), ARCHS))
    return d


@pytest.mark.parametrize("src", ["gemv.cu", "gemm_sm.cu", "dequant.cu", "quant.cu"])
def test_mma_sync_kernels_compile_all_archs_without_spills(tmp_path, src):
    """The decode GEMV, the small-M GEMM (mma.sync, every architecture), the dequantize and the quantize compile
    without register spills."""
    def one(arch):
        return arch, _compile(CUDA_DIR / src, arch, tmp_path / f"{src}_{arch}.o", ["-Xptxas", "-v"])
    with ThreadPoolExecutor(2) as ex:
        logs = dict(ex.map(one, ARCHS))
    for arch, log in logs.items():
        # a few bytes of spill (seen: 4 on one arch) cost nothing; a spilled fragment array would be hundreds
        spills = [ln for ln in log.splitlines() if "spill stores" in ln and int(ln.split(",")[1].split()[0]) > 64]
        assert not spills, f"sm_{arch}: register spills in {src}\n" + "\n".join(spills)


@pytest.mark.parametrize("src", ["gemm_tc.cu", "gemm_rs.cu"])
def test_wgmma_kernels_compile_without_spills_or_serialized_wgmma(tmp_path, src):
    """The two wgmma GEMMs (sm_90a; a trap body elsewhere) compile for every architecture; on sm_90a no instantiation
    spills and ptxas reports no serialized wgmma (C7515: a wait after each wgmma, which an earlier gemm_tc got from
    thread-dependent descriptors; C7512: too few registers for the wgmma pipeline, which a 256-row x tile gave
    gemm_rs at its 168-register budget)."""
    def one(arch):
        return arch, _compile(CUDA_DIR / src, arch, tmp_path / f"{src}_{arch}.o", ["-Xptxas", "-v"])
    with ThreadPoolExecutor(2) as ex:
        logs = dict(ex.map(one, ARCHS))
    log = logs["90a"]
    assert src.replace(".cu", "_kernel") in log
    spills = [ln for ln in log.splitlines() if "spill stores" in ln and int(ln.split(",")[1].split()[0]) > 0]
    assert not spills, f"register spills in {src} (sm_90a)\n" + "\n".join(spills)
    for code in ("C7515", "C7512", "C7510"):
        assert code not in log, f"ptxas serialized wgmma in {src} ({code}):\n" + log[-3000:]


def test_bindings_compile_host_only(tmp_path):
    try:
        import pybind11
    except ImportError:
        pytest.skip("pybind11 not installed")
    _compile(CUDA_DIR / "bindings.cu", "90a", tmp_path / "bindings.o",
             ["-I", pybind11.get_include(), "-I", sysconfig.get_paths()["include"]])


@pytest.mark.parametrize("arch", ARCHS)
def test_w4a4_sass_has_block_scaled_mma(w4a4_objects, arch):
    tools = _tool_dir()
    if tools is None:
        pytest.skip("cuobjdump/nvdisasm not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    env = dict(os.environ, PATH=tools + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run([os.path.join(tools, "cuobjdump"), "-sass", str(w4a4_objects / f"w4a4_{arch}.o")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    sass = r.stdout
    if arch in ("120a", "121a"):
        assert "OMMA.SF" in sass, f"sm_{arch}: no OMMA.SF in the W4A4 kernel's SASS"
        assert "UE4M3.4X" in sass, f"sm_{arch}: no nvfp4 (ue4m3, scale_vec::4X) block-scaled MMA"
    else:
        assert "OMMA" not in sass and "HMMA.16816.F32.BF16" in sass, f"sm_{arch}: expected the bf16 fallback"
