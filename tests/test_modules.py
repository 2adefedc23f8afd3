"""QuantLinear and quantize_: forward vs the reference, state_dict round trips, converter rules, bad checkpoints."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from fourbit import QuantConfig, QuantLinear, quantize_, testing
from fourbit.formats import PRESETS


class Block(nn.Module):
    """A tiny transformer-shaped model: attention and MLP linears, a norm, an embedding and an lm_head."""

    def __init__(self, d=64, ff=128, vocab=50):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.self_attn = nn.ModuleDict({"q_proj": nn.Linear(d, d), "o_proj": nn.Linear(d, d, bias=False)})
        self.mlp = nn.ModuleDict({"up_proj": nn.Linear(d, ff), "down_proj": nn.Linear(ff, d)})
        self.norm = nn.LayerNorm(d)
        self.odd = nn.Linear(40, 8)  # K=40 fits no 4-bit group of 32 or more
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        h = self.embed(ids)
        h = h + self.self_attn["o_proj"](self.self_attn["q_proj"](h))
        h = h + self.mlp["down_proj"](torch.relu(self.mlp["up_proj"](h)))
        return self.lm_head(self.norm(h))


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quant_linear_forward_matches_reference(name, dtype):
    lin = nn.Linear(256, 48).to(dtype)
    q = QuantLinear.from_linear(lin, PRESETS[name])
    x = torch.randn(2, 5, 256, dtype=dtype)
    w_ref = PRESETS[name].dequantize_ref(PRESETS[name].quantize_ref(lin.weight))
    testing.assert_linear_close(q(x), x, w_ref, lin.bias)
    testing.assert_bit_exact(q.dequantize(), w_ref, "dequantize()")
    assert name.split("_")[0] in repr(q) and "bytes" in repr(q)


def test_conv1d_is_transposed():
    transformers = pytest.importorskip("transformers")
    conv = transformers.pytorch_utils.Conv1D(48, 256)  # nf=48 outputs, nx=256 inputs, weight [256, 48]
    q = QuantLinear.from_linear(conv, "nf4")
    x = torch.randn(3, 256)
    testing.assert_linear_close(q(x), x, PRESETS["nf4"].dequantize_ref(PRESETS["nf4"].quantize_ref(conv.weight.t())),
                                conv.bias)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_state_dict_round_trip_through_safetensors(name, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    q = QuantLinear.from_linear(nn.Linear(256, 40), PRESETS[name])
    path = tmp_path / "q.safetensors"
    safetensors.save_file(q.state_dict(), str(path))
    q2 = QuantLinear(256, 40, PRESETS[name])
    q2.load_state_dict(safetensors.load_file(str(path)))
    x = torch.randn(4, 256)
    testing.assert_bit_exact(q2(x), q(x), f"{name} reloaded")


def test_groups_across_rows_round_trip(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    lin = nn.Linear(576, 24)  # K = 576 is 4.5 groups of 128: groups cross rows
    q = QuantLinear.from_linear(lin, "int4")
    assert q.scales.shape == (24 * 576 // 128, 1)
    path = tmp_path / "q.safetensors"
    safetensors.save_file(q.state_dict(), str(path))
    q2 = QuantLinear(576, 24, "int4")
    q2.load_state_dict(safetensors.load_file(str(path)))
    x = torch.randn(3, 576)
    testing.assert_bit_exact(q2(x), q(x), "reloaded")
    testing.assert_linear_close(q(x), x, testing.reference_dequantize(lin.weight, "int4"), lin.bias)


@pytest.mark.parametrize("key,bad", [
    ("qweight", lambda t: t[:-1]),            # truncated
    ("qweight", lambda t: t.to(torch.int32)),  # wrong dtype
    ("scales", lambda t: t.reshape(-1)),        # wrong shape
])
def test_bad_checkpoint_is_rejected_naming_the_tensor(key, bad):
    q = QuantLinear.from_linear(nn.Linear(256, 40), "int4")
    sd = q.state_dict()
    sd[key] = bad(sd[key])
    with pytest.raises(ValueError, match=f"checkpoint tensor {key} has"):
        QuantLinear(256, 40, "int4").load_state_dict(sd)


def test_to_keeps_layout_valid():
    q = QuantLinear.from_linear(nn.Linear(128, 16), "nvfp4")
    y = q(torch.ones(1, 128))
    q2 = q.to("cpu").to(torch.device("cpu"))
    testing.assert_bit_exact(q2(torch.ones(1, 128)), y, "after .to")


def test_converter_defaults_overrides_and_warnings():
    model = Block()
    ids = torch.randint(0, 50, (2, 7))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = quantize_(model, QuantConfig("nf4", overrides={"self_attn.*": "int8", "mlp.down_proj": None}))
    assert report.quantized == {"self_attn.q_proj": "int8", "self_attn.o_proj": "int8", "mlp.up_proj": "nf4"}
    assert set(report.kept) == {"mlp.down_proj", "odd", "lm_head"}
    assert isinstance(model.embed, nn.Embedding) and isinstance(model.norm, nn.LayerNorm)
    assert any("odd" in str(w.message) for w in caught)  # the misfit is named in a warning
    assert report.bytes_after < report.bytes_before
    before = model(ids)
    again = quantize_(model, QuantConfig("nf4", overrides={"self_attn.*": "int8", "mlp.down_proj": None}))
    assert again.quantized == {} and again.bytes_after == again.bytes_before  # idempotent
    testing.assert_bit_exact(model(ids), before, "unchanged by the second call")


def test_converter_filter_fn_and_config_validation():
    model = Block()
    quantize_(model, "int8", filter_fn=lambda m, n: n.startswith("mlp"))
    assert isinstance(model.mlp["up_proj"], QuantLinear) and isinstance(model.self_attn["q_proj"], nn.Linear)
    with pytest.raises(ValueError, match="unknown format"):
        QuantConfig("int5")
    with pytest.raises(TypeError, match="overrides must map"):
        QuantConfig("nf4", overrides=(("x", "nf4", 3),))


def test_compiled_model_fullgraph():
    model = Block()
    quantize_(model, "nf4")
    ids = torch.randint(0, 50, (2, 7))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    testing.assert_bit_exact(compiled(ids), model(ids), "compiled model")
