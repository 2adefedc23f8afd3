"""`quantize_(model, config, filter_fn)`: replace every eligible linear layer of a model with a QuantLinear."""
from __future__ import annotations

import fnmatch
import sys
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

from torch import nn

from ..formats import Format
from ..modules import QuantLinear
from ..ops import w4a8
from ..quantized import resolve_format

FormatLike = Union[Format, str, None]

#: kept in high precision unless an override names them: the output head (and tied embeddings); embeddings and
#: norms are not Linear layers, so they are never touched
DEFAULT_SKIP = ("lm_head", "*.lm_head")


@dataclass(frozen=True)
class QuantConfig:
    """What to quantize, and how.

    format: the default format (Format or preset name, e.g. "nf4", "int4", "nvfp4").
    overrides: {glob pattern on the module's qualified name: format, or None to keep it in high precision};
        the first matching pattern wins, e.g. {"*.self_attn.*": "int8", "*.mlp.*": "nf4", "model.layers.0.*": None}.
    skip: glob patterns kept in high precision when no override matches (default: the lm_head).
    act: activations of the quantized layers: "bf16" (default; None means the same) keeps the W4A16 path, x in its
        own dtype; "fp8_e4m3" opts in to W4A8 (x quantized per token to FP8 E4M3, FP8 tensor cores; int4 and
        mxfp4 only, checked here for the format and every override).
    """

    format: FormatLike = "nf4"
    overrides: Tuple[Tuple[str, FormatLike], ...] = ()
    skip: Tuple[str, ...] = DEFAULT_SKIP
    act: Optional[str] = "bf16"

    def __post_init__(self):
        object.__setattr__(self, "format", resolve_format(self.format))
        ov = self.overrides.items() if isinstance(self.overrides, dict) else self.overrides
        checked = []
        for item in ov:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise TypeError(f"overrides must map glob patterns (str) to formats, got {item!r}")
            checked.append((item[0], None if item[1] is None else resolve_format(item[1])))
        object.__setattr__(self, "overrides", tuple(checked))
        if isinstance(self.skip, str) or not all(isinstance(s, str) for s in self.skip):
            raise TypeError(f"skip must be a sequence of glob patterns, got {self.skip!r}")
        object.__setattr__(self, "skip", tuple(self.skip))
        object.__setattr__(self, "act", w4a8.check_act(self.act))
        if self.act == "fp8_e4m3":
            for fmt in [self.format] + [f for _, f in self.overrides if f is not None]:
                w4a8.check_format(fmt)

    def format_for(self, name: str) -> Optional[Format]:
        """The format for the module called `name`, or None to keep it."""
        for pattern, fmt in self.overrides:
            if fnmatch.fnmatchcase(name, pattern):
                return fmt
        if any(fnmatch.fnmatchcase(name, p) for p in self.skip):
            return None
        return self.format


@dataclass
class ConversionReport:
    """What quantize_ did: bytes of parameters and buffers before and after, and each layer's fate."""

    bytes_before: int = 0
    bytes_after: int = 0
    quantized: Dict[str, str] = field(default_factory=dict)  # name -> format
    kept: Dict[str, str] = field(default_factory=dict)  # name -> reason

    def __str__(self) -> str:
        mib = 2.0**20
        return (f"fourbit: quantized {len(self.quantized)} layers, kept {len(self.kept)}; "
                f"{self.bytes_before / mib:.1f} MiB -> {self.bytes_after / mib:.1f} MiB")


def model_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer (shared tensors counted once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen and t.numel():
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def _is_linear(m: nn.Module) -> bool:
    """nn.Linear or Hugging Face's Conv1D (a linear layer with a transposed weight)."""
    return isinstance(m, nn.Linear) or (type(m).__name__ == "Conv1D" and hasattr(m, "nf"))


def quantize_(model: nn.Module, config: Union[QuantConfig, FormatLike] = None,
              filter_fn: Optional[Callable[[nn.Module, str], bool]] = None, progress: Optional[bool] = None,
              verbose: bool = False) -> ConversionReport:
    """Replace, in place, each eligible linear layer of `model` by a QuantLinear. Returns a ConversionReport.

    config: a QuantConfig, or a format / preset name for QuantConfig(format=...). filter_fn(module, name) -> bool
    restricts the candidates further. Layers whose shape the format cannot take stay in high precision with one
    warning naming them. Already-quantized layers are left as they are, so a second call changes nothing.
    progress: show a progress bar (default: when there are more than 16 layers and stderr is a terminal).
    """
    if not isinstance(config, QuantConfig):
        config = QuantConfig(format=config if config is not None else "nf4")
    report = ConversionReport(bytes_before=model_bytes(model))
    candidates: List[Tuple[str, nn.Module]] = []
    for name, mod in model.named_modules():
        if isinstance(mod, QuantLinear):
            report.kept[name] = f"already {mod.format.name}"
        elif _is_linear(mod) and (filter_fn is None or filter_fn(mod, name)):
            candidates.append((name, mod))
    if progress is None:
        progress = len(candidates) > 16 and sys.stderr.isatty()
    bar = _progress(len(candidates)) if progress else None
    misfits = []
    for name, mod in candidates:
        fmt = config.format_for(name)
        if fmt is None:
            report.kept[name] = "skipped by config"
        else:
            K, N = (mod.weight.shape[0], mod.weight.shape[1]) if type(mod).__name__ == "Conv1D" else \
                (mod.weight.shape[1], mod.weight.shape[0])
            try:
                fmt.check_shape(N, K)
            except ValueError as e:
                report.kept[name] = str(e)
                misfits.append(f"{name} ({e})")
            else:
                _set_submodule(model, name, QuantLinear.from_linear(mod, fmt, act=config.act))
                report.quantized[name] = fmt.name
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    if misfits:
        warnings.warn("fourbit: kept in high precision (shape does not fit the format): " + "; ".join(misfits),
                      stacklevel=2)
    report.bytes_after = model_bytes(model)
    if verbose:
        print(report, file=sys.stderr)
    return report


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


class _progress:
    """A minimal stderr progress bar (tqdm when installed)."""

    def __init__(self, total: int):
        try:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, desc="fourbit quantize", unit="layer")
        except ImportError:
            self._bar, self.n, self.total = None, 0, total

    def update(self, k: int) -> None:
        if self._bar is not None:
            self._bar.update(k)
            return
        self.n += k
        print(f"\rfourbit quantize: {self.n}/{self.total} layers", end="", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            print(file=sys.stderr)
