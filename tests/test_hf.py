"""Hugging Face integration: FourbitConfig / FourbitHfQuantizer through from_pretrained and save_pretrained.

Most checks use a tiny random LlamaForCausalLM saved to tmp_path (fast); one runs the real SmolLM2-135M.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import fourbit  # noqa: E402
from fourbit import QuantLinear  # noqa: E402
from fourbit.convert import hf  # noqa: E402
from fourbit.convert.hf import FourbitConfig  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM  # noqa: E402

# in_features 128 and 256: every preset fits (int4 g128, nvfp4 16, mxfp4 32, nf4 64, int8 per-channel)
TINY = dict(vocab_size=96, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(LlamaConfig(**TINY)).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, TINY["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(1))


def _logits(model, ids):
    with torch.inference_mode():
        return model(ids).logits


def _load(path, **kw):
    return AutoModelForCausalLM.from_pretrained(path, **kw)


def _header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


# ------------------------------------------------------------------------------------------------ round trip

@pytest.mark.parametrize("preset", ["nf4", "nf4_dq", "int4", "int4_sym", "bnb_fp4", "nvfp4", "mxfp4", "int8"])
def test_quantize_at_load_save_reload_identical(tiny_dir, ids, tmp_path, preset):
    q = _load(tiny_dir, quantization_config=FourbitConfig(preset))
    layer = q.model.layers[1]
    for name in LINEARS:
        mod = layer.get_submodule(name)
        assert isinstance(mod, QuantLinear) and mod.format == fourbit.PRESETS[preset], name
    assert type(q.lm_head) is torch.nn.Linear  # kept by the default skip
    a = _logits(q, ids)

    # same result as fourbit.quantize_ on the float model
    ref = _load(tiny_dir)
    fourbit.quantize_(ref, fourbit.QuantConfig(preset))
    torch.testing.assert_close(a, _logits(ref, ids), rtol=0, atol=0)

    q.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "fourbit" and cfg["format"] == fourbit.PRESETS[preset].name
    head = _header(tmp_path / "model.safetensors")
    key = "model.layers.0.mlp.up_proj."
    stored = {k[len(key):] for k in head if k.startswith(key)}
    assert stored == set(fourbit.modules.quant_linear.expected_tensors(fourbit.PRESETS[preset], 256, 128))
    assert not any(k.endswith("proj.weight") for k in head)

    r = _load(tmp_path)
    assert isinstance(r.hf_quantizer, hf.FourbitHfQuantizer) and r.hf_quantizer.pre_quantized
    for (k1, v1), (k2, v2) in zip(q.state_dict().items(), r.state_dict().items()):
        assert k1 == k2 and v1.dtype == v2.dtype and torch.equal(v1.view(torch.uint8) if v1.element_size() == 1
                                                                 else v1, v2.view(torch.uint8)
                                                                 if v2.element_size() == 1 else v2), k1
    assert torch.equal(_logits(r, ids), a)


def test_overrides_and_skips_through_config_json(tiny_dir, ids, tmp_path):
    cfg = FourbitConfig("nf4", overrides={"*.mlp.down_proj": "int8",  # first match wins: down_proj is int8 ...
                                          "*.mlp.*": {"format": "int4", "group_size": 64, "symmetric": True},
                                          "model.layers.0.self_attn.q_proj": None},
                        skip_modules=["lm_head", "*.v_proj"])
    q = _load(tiny_dir, quantization_config=cfg)

    def kinds(model):
        out = {}
        for i in range(TINY["num_hidden_layers"]):
            for n in LINEARS:
                m = model.model.layers[i].get_submodule(n)
                out[f"{i}.{n}"] = m.format if isinstance(m, QuantLinear) else None
        return out

    k = kinds(q)
    assert k["0.mlp.down_proj"] == fourbit.formats.Int8() and k["1.mlp.down_proj"] == fourbit.formats.Int8()
    assert k["0.mlp.up_proj"] == fourbit.formats.Int4(group_size=64, symmetric=True)
    assert k["0.self_attn.q_proj"] is None and k["1.self_attn.q_proj"] == fourbit.PRESETS["nf4"]
    assert k["0.self_attn.v_proj"] is None and k["1.self_attn.v_proj"] is None
    assert k["1.self_attn.o_proj"] == fourbit.PRESETS["nf4"]
    a = _logits(q, ids)
    q.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert [p for p, _ in saved["overrides"]] == ["*.mlp.down_proj", "*.mlp.*", "model.layers.0.self_attn.q_proj"]
    assert saved["skip_modules"] == ["lm_head", "*.v_proj"]
    r = _load(tmp_path)
    assert kinds(r) == k
    assert torch.equal(_logits(r, ids), a)


def test_config_serialization_round_trip():
    cfg = FourbitConfig("int4_sym", overrides=[("*.mlp.*", fourbit.formats.NF4(block_size=128)), ("x", None)])
    d = cfg.to_dict()
    assert d["format"] == "int4" and d["format_params"] == {"group_size": 128, "symmetric": True}
    assert d["overrides"][0] == ["*.mlp.*", {"format": "nf4", "block_size": 128, "double_quant": False}]
    again = transformers.quantizers.auto.AutoQuantizationConfig.from_dict(json.loads(json.dumps(d)))
    assert isinstance(again, FourbitConfig) and again == cfg
    qc = again.quant_config()
    assert qc.format_for("model.layers.3.mlp.up_proj") == fourbit.formats.NF4(block_size=128)
    assert qc.format_for("lm_head") is None and qc.format_for("x") is None


def test_w4a8_act_through_config_json(tiny_dir, ids, tmp_path):
    """act="fp8_e4m3" is stored in config.json, reaches every QuantLinear at load and at reload, and gives the same
    logits as fourbit.quantize_ with the same QuantConfig; formats that cannot run W4A8 are refused up front."""
    q = _load(tiny_dir, quantization_config=FourbitConfig("int4", act="fp8_e4m3"))
    mods = [m for m in q.modules() if isinstance(m, QuantLinear)]
    assert mods and all(m.act == "fp8_e4m3" for m in mods)
    ref = _load(tiny_dir)
    fourbit.quantize_(ref, fourbit.QuantConfig("int4", act="fp8_e4m3"))
    a = _logits(q, ids)
    torch.testing.assert_close(a, _logits(ref, ids), rtol=0, atol=0)
    assert not torch.equal(a, _logits(_load(tiny_dir, quantization_config=FourbitConfig("int4")), ids))
    q.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["quantization_config"]["act"] == "fp8_e4m3"
    r = _load(tmp_path)
    assert all(m.act == "fp8_e4m3" for m in r.modules() if isinstance(m, QuantLinear))
    assert torch.equal(_logits(r, ids), a)
    with pytest.raises(ValueError, match="nvfp4"):
        FourbitConfig("nvfp4", act="fp8_e4m3")
    with pytest.raises(ValueError, match="nf4"):
        FourbitConfig("int4", overrides={"*.mlp.*": "nf4"}, act="fp8_e4m3")


# --------------------------------------------------------------------------------------------- bad configs

@pytest.mark.parametrize("kwargs, match", [
    (dict(format="int3"), "unknown format 'int3'"),
    (dict(format="fp4"), "no bare 'fp4'"),
    (dict(format="int4", format_params={"group_size": 100}), "group_size"),
    (dict(format="int4", format_params={"bits": 3}), "bad parameters"),
    (dict(format="nf4", overrides={"*.mlp.*": "int5"}), r"override '\*\.mlp\.\*'.*unknown format 'int5'"),
    (dict(format="nf4", skip_modules="lm_head"), "skip_modules"),
    (dict(format="nf4", group_size=64), "unknown field"),
])
def test_bad_config_fails_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FourbitConfig(**kwargs)


def test_unknown_format_in_saved_config_fails_clearly(tiny_dir, tmp_path):
    q = _load(tiny_dir, quantization_config=FourbitConfig("nf4"))
    q.save_pretrained(tmp_path)
    p = tmp_path / "config.json"
    cfg = json.loads(p.read_text())
    cfg["quantization_config"]["format"] = "nf5"
    p.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown format 'nf5'"):
        _load(tmp_path)


def test_transformers_version_is_checked():
    hf._check_version("5.24.0")
    for v in ("4.57.1", "6.0.0", "dev"):
        with pytest.raises(ImportError, match=r"supports transformers >=5,<6.*found transformers " + v):
            hf._check_version(v)


# ------------------------------------------------------------------------------------------ bad checkpoints

@pytest.fixture
def saved(tiny_dir, tmp_path):
    q = _load(tiny_dir, quantization_config=FourbitConfig("int4", overrides={"*.down_proj": "nvfp4"}))
    q.save_pretrained(tmp_path)
    return tmp_path


def _tamper(folder, fn):
    path = folder / "model.safetensors"
    sd = safetensors_torch.load_file(path)
    fn(sd)
    safetensors_torch.save_file(sd, path, metadata={"format": "pt"})


@pytest.mark.parametrize("what, edit, match", [
    ("truncated", lambda sd, k: sd.__setitem__(k, sd[k][:-1].clone()),
     r"model\.layers\.1\.mlp\.up_proj\.qweight has shape \[255, 64\], expected \[256, 64\].*truncated"),
    ("wrong shape", lambda sd, k: sd.__setitem__(k, sd[k].reshape(128, 128).clone()),
     r"model\.layers\.1\.mlp\.up_proj\.qweight has shape \[128, 128\], expected \[256, 64\]"),
    ("wrong dtype", lambda sd, k: sd.__setitem__(k.replace("qweight", "scales"),
                                                  sd[k.replace("qweight", "scales")].half()),
     r"model\.layers\.1\.mlp\.up_proj\.scales has dtype F16, expected F32"),
    ("missing", lambda sd, k: sd.pop(k.replace("qweight", "zeros")),
     r"model\.layers\.1\.mlp\.up_proj\.zeros is missing"),
    ("fp8 scale as f32", lambda sd, k: sd.__setitem__("model.layers.0.mlp.down_proj.scales",
                                                       sd["model.layers.0.mlp.down_proj.scales"].float()),
     r"model\.layers\.0\.mlp\.down_proj\.scales has dtype F32, expected F8_E4M3"),
])
def test_bad_checkpoint_is_rejected_naming_the_tensor(saved, what, edit, match):
    _tamper(saved, lambda sd: edit(sd, "model.layers.1.mlp.up_proj.qweight"))
    with pytest.raises(ValueError, match=match):
        _load(saved)


def test_config_that_contradicts_checkpoint_is_rejected(saved):
    p = saved / "config.json"
    cfg = json.loads(p.read_text())
    cfg["quantization_config"]["skip_modules"] = ["lm_head", "*.up_proj"]
    p.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.up_proj\.qweight is in the checkpoint but"):
        _load(saved)


# ------------------------------------------------------------------------------------------------ registration

def _subprocess_env():
    root = os.path.dirname(os.path.dirname(fourbit.__file__))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def test_import_fourbit_registers_lazily_and_reloads(saved):
    code = f"""
import sys, torch, fourbit
assert "transformers" not in sys.modules, "import fourbit must not import transformers"
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained({str(saved)!r})
assert type(m.model.layers[0].mlp.up_proj).__name__ == "QuantLinear"
from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING, AUTO_QUANTIZATION_CONFIG_MAPPING
assert AUTO_QUANTIZER_MAPPING["fourbit"] is fourbit.FourbitHfQuantizer
assert AUTO_QUANTIZATION_CONFIG_MAPPING["fourbit"] is fourbit.FourbitConfig
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(),
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_registration_when_transformers_was_imported_first():
    code = """
import transformers.quantizers.auto as auto
import fourbit
assert auto.AUTO_QUANTIZER_MAPPING["fourbit"].__name__ == "FourbitHfQuantizer"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(),
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


# ------------------------------------------------------------------------------------------------ real model

@pytest.mark.slow
def test_real_smollm2_quantize_save_reload(tmp_path):
    from fourbit import assets
    from fourbit.report import load_model

    try:
        base, _, _ = load_model()
    except assets.AssetError as e:
        pytest.skip(str(e))
    float_dir = tmp_path / "float"
    base.save_pretrained(float_dir)  # GGUF -> HF folder (quantization_config cannot be combined with gguf_file)
    ids = torch.arange(100, 164).reshape(2, 32)
    cfg = FourbitConfig("nf4", overrides={"*.self_attn.*": "int8"})
    q = _load(float_dir, quantization_config=cfg)
    n_q = sum(isinstance(m, QuantLinear) for m in q.modules())
    assert n_q == 30 * 7  # every linear of the 30 blocks; lm_head (tied to the embeddings) kept
    assert isinstance(q.model.layers[5].self_attn.k_proj, QuantLinear)
    assert q.model.layers[5].self_attn.k_proj.format == fourbit.PRESETS["int8"]
    a = _logits(q, ids)
    fourbit.quantize_(base, fourbit.QuantConfig("nf4", overrides={"*.self_attn.*": "int8"}))
    assert torch.equal(a, _logits(base, ids))
    del base
    q.save_pretrained(tmp_path / "q")
    size = sum(f.stat().st_size for f in (tmp_path / "q").glob("*.safetensors"))
    assert size < 0.5 * sum(f.stat().st_size for f in float_dir.glob("*.safetensors"))
    r = _load(tmp_path / "q")
    assert torch.equal(_logits(r, ids), a)
