"""fourbit report: the perplexity protocol on a tiny model, and the real SmolLM2 end to end at a small token count.

The full 8192-token run (the ANCHORS.md quality reference) is a benchmark, not a test:
    fourbit report --formats nf4,int4,nvfp4,mxfp4,int8 --tokens 8192 --json OUT.json
"""
import json
import math

import pytest
import torch

pytest.importorskip("transformers")

from fourbit import assets, cli, report  # noqa: E402


# ------------------------------------------------------------------------------------------------ protocol

class _Toy(torch.nn.Module):
    """A causal "model" whose logits at position t depend on tokens <= t only; counts calls."""

    def __init__(self, vocab=50):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.randn(vocab, vocab, generator=g)
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape[1])
        logits = torch.cumsum(self.emb[x], dim=1) / torch.arange(1, x.shape[1] + 1)[None, :, None]

        class Out:
            pass
        o = Out()
        o.logits = logits
        return o


def test_perplexity_follows_the_protocol():
    ids = torch.randint(0, 50, (1030,), generator=torch.Generator().manual_seed(1))
    m = _Toy()
    got = report.perplexity(m, ids)
    assert m.calls == [512, 512, 5]  # chunks ids[0:513], ids[512:1025], ids[1024:1030]
    total, n = 0.0, 0
    for i in range(0, 1030, 512):
        chunk = ids[i:i + 513]
        logits = m(chunk[None, :-1]).logits[0]
        total += torch.nn.functional.cross_entropy(logits, chunk[1:], reduction="sum").item()
        n += len(chunk) - 1
    assert got["predictions"] == n == 1029
    assert got["ppl"] == pytest.approx(math.exp(total / n), rel=1e-12)
    assert got["argmax"].shape == (1029,)


def test_eval_ids_rejects_short_text():
    class Tok:
        def __call__(self, text):
            class E:
                input_ids = list(range(len(text.split())))
            return E()
    with pytest.raises(ValueError, match="needs at least 101"):
        report.eval_ids(Tok(), "a " * 50, 100)
    ids = report.eval_ids(Tok(), "a " * 3000, 512)
    assert ids[0].item() == 2000 and len(ids) == 512


def test_report_cli_rejects_unknown_format():
    with pytest.raises(SystemExit, match="unknown format.*nf5"):
        cli.main(["report", "--formats", "nf4,nf5", "--tokens", "64"])


def test_report_help_lists_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    out = capsys.readouterr().out
    assert "--tokens" in out and "nf4,int4,nvfp4,mxfp4,int8" in out and "8192" in out


# ------------------------------------------------------------------------------------------------ real model

@pytest.fixture(scope="module")
def smollm2():
    try:
        path = assets.smollm2_gguf_path()
        text = assets.shakespeare_text()
    except (assets.AssetError, KeyError) as e:
        pytest.skip(str(e))
    return path, text


@pytest.mark.slow
def test_report_real_model_end_to_end(smollm2, tmp_path, capsys):
    path, text = smollm2
    out = tmp_path / "r.json"
    rc = cli.main(["report", "--formats", "nf4,int8", "--tokens", "1024", "--gen-tokens", "2",
                   "--json", str(out), "--no-progress"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "fp32" in table and "nf4" in table and "int8" in table
    r = json.loads(out.read_text())
    assert r["tokens"] == 1024 and r["predictions"] == 1023
    names = [e["format"] for e in r["entries"]]
    assert names == ["fp32", "nf4", "int8"]
    for e in r["entries"]:
        for k in ("format", "bits_per_weight", "memory_bytes", "ppl", "tokens_per_s", "agreement"):
            assert k in e, (e["format"], k)
        assert math.isfinite(e["ppl"]) and e["tokens_per_s"] > 0 and e["predictions"] == 1023
    base, nf4, int8 = r["entries"]
    assert base["bits_per_weight"] == 32.0 and base["agreement"] == 1.0
    assert nf4["ppl"] > base["ppl"] and int8["ppl"] > base["ppl"] * 0.999
    assert nf4["ppl"] > int8["ppl"]
    assert nf4["bits_per_weight"] == pytest.approx(4.5)  # 4 bits + one fp32 absmax per 64
    assert 8.0 < int8["bits_per_weight"] < 8.06  # 8 bits + one fp32 scale per row of 576 or 1536
    assert nf4["quantized_layers"] == int8["quantized_layers"] == 210 == base["linear_layers"] - 1
    assert nf4["memory_bytes"] < int8["memory_bytes"] < base["memory_bytes"]
    assert 0.5 < nf4["agreement"] < int8["agreement"] <= 1.0

    # the baseline perplexity, computed independently of fourbit.report
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ids = tok(text).input_ids[2000:3024]
    nll, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(ids), 512):
            chunk = torch.tensor(ids[i:i + 513])
            logits = model(chunk[None, :-1]).logits[0]
            nll += torch.nn.functional.cross_entropy(logits, chunk[1:], reduction="sum").item()
            n += len(chunk) - 1
    assert n == 1023
    assert base["ppl"] == pytest.approx(math.exp(nll / n), rel=1e-6)


@pytest.mark.slow
def test_report_local_folder_and_text_file(smollm2, tmp_path):
    """Any local HF model folder and --text FILE: a tiny random Llama with SmolLM2's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path, text = smollm2
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    (tmp_path / "t.txt").write_text(text[:40000], encoding="utf-8")
    r = report.run_report(str(tmp_path / "m"), ["nf4", "mxfp4"], tokens=600, text_file=str(tmp_path / "t.txt"),
                          gen_tokens=2, progress=False)
    assert [e["format"] for e in r["entries"]] == ["fp32", "nf4", "mxfp4"]
    assert r["predictions"] == 599
    assert all(math.isfinite(e["ppl"]) for e in r["entries"])
    assert r["entries"][1]["quantized_layers"] == 14
