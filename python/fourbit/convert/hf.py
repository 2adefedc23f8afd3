"""Hugging Face transformers integration: `FourbitConfig` and `FourbitHfQuantizer`, quant method "fourbit".

    from transformers import AutoModelForCausalLM
    from fourbit.convert.hf import FourbitConfig        # or: fourbit.FourbitConfig

    cfg = FourbitConfig("nf4", overrides={"*.self_attn.*": "int8", "model.layers.0.*": None})
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=cfg)   # quantized at load
    model.save_pretrained(out)          # quantized safetensors (QuantLinear buffers) + quantization_config
    again = AutoModelForCausalLM.from_pretrained(out)    # reloads the quantized tensors, no re-quantization

Supported: transformers >= 5, < 6 (the quantizer API changed between 4.x and 5.x); other versions fail at import
with a clear message. Registration: `import fourbit` registers "fourbit" lazily (fourbit.convert._hf_hook), so a
saved checkpoint reloads after a plain `import fourbit`; importing this module registers too.

Loading a float checkpoint quantizes after the float weights are loaded (peak memory = the float model), with
`fourbit.quantize_` and the same rules: the first override whose glob pattern matches a module's qualified name
decides its format (None keeps it in high precision), else `skip_modules` globs keep it (default: the lm_head),
else the default format; layers whose shape the format cannot take stay in high precision with one warning.
Saved tensors per quantized layer: `<module>.qweight`, `.scales`, `.zeros`, `.global_scale`, `.nested_*`, `.bias`,
as in fourbit.modules.quant_linear.STATE_DICT_DOC. Reloading checks every one of them against the shape and dtype
the config implies, and rejects a missing, misshapen (e.g. truncated) or mistyped tensor, naming it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

try:
    import transformers
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fourbit.convert.hf needs Hugging Face transformers >=5,<6: pip install 'fourbit[hf]'") from e

SUPPORTED = (5, 6)  # [min major, max major)


def _check_version(version: str) -> None:
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = -1
    if not SUPPORTED[0] <= major < SUPPORTED[1]:
        raise ImportError(f"fourbit's Hugging Face integration supports transformers >={SUPPORTED[0]},<{SUPPORTED[1]} "
                          f"(its quantizer API changed between 4.x and 5.x); found transformers {version}. "
                          f"Install a supported version: pip install 'fourbit[hf]'")


_check_version(transformers.__version__)

from transformers.quantizers.auto import (  # noqa: E402
    register_quantization_config, register_quantizer)
from transformers.quantizers.base import HfQuantizer  # noqa: E402
from transformers.utils.quantization_config import QuantizationConfigMixin  # noqa: E402

from ..formats import FORMATS, PRESETS, Format, make_format  # noqa: E402
from ..modules import QuantLinear  # noqa: E402
from ..modules.quant_linear import expected_tensors  # noqa: E402
from .quantize_ import DEFAULT_SKIP, QuantConfig, _is_linear, _set_submodule, quantize_  # noqa: E402

QUANT_METHOD = "fourbit"

__all__ = ["FourbitConfig", "FourbitHfQuantizer", "QUANT_METHOD"]


# ---------------------------------------------------------------------------------------------------- config

def _format_of(spec: Any, params: Optional[Dict[str, Any]] = None, where: str = "format") -> Format:
    """A Format from a name (format or preset) + params, a Format, or a {"format": name, **params} dict."""
    if isinstance(spec, Format):
        if params:
            raise ValueError(f"FourbitConfig: {where}: give params with a format name, not with a Format object")
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("format", spec.pop("name", None))
        if name is None:
            raise ValueError(f"FourbitConfig: {where}: a dict format needs a 'format' key, got {spec!r}")
        return _format_of(name, {**spec, **(params or {})}, where)
    if not isinstance(spec, str):
        raise TypeError(f"FourbitConfig: {where} must be a format name, a fourbit Format or a dict, got {spec!r}")
    params = dict(params or {})
    try:
        if params and spec in PRESETS and spec not in FORMATS:
            return PRESETS[spec].replace(**params)
        return make_format(spec, **params)
    except TypeError as e:  # an unknown parameter name
        cls = FORMATS.get(spec, type(PRESETS[spec]) if spec in PRESETS else None)
        fields = [f.name for f in dataclasses.fields(cls)] if cls is not None else []
        raise ValueError(f"FourbitConfig: {where}: bad parameters {params} for format {spec!r} "
                         f"(its parameters: {', '.join(fields) or 'none'}): {e}") from None
    except ValueError as e:
        raise ValueError(f"FourbitConfig: {where}: {e}") from None


def _format_dict(fmt: Format) -> Dict[str, Any]:
    """{"format": exact name, **fields}: the JSON form of a format."""
    return {"format": fmt.name, **dataclasses.asdict(fmt)}


@register_quantization_config(QUANT_METHOD)
class FourbitConfig(QuantizationConfigMixin):
    """Quantization config of fourbit for `from_pretrained(..., quantization_config=FourbitConfig(...))`.

    Args:
        format: default format, a preset name ("nf4", "int4", "int4_sym", "nvfp4", "mxfp4", "int8", ...; see
            `fourbit formats`), an exact format name ("int4", "nf4", "bnb_fp4", "nvfp4", "mxfp4", "int8") with
            `format_params`, or a fourbit Format object.
        format_params: the format's parameters, e.g. {"group_size": 64, "symmetric": True} for "int4".
        overrides: {glob on the module's qualified name: format} in priority order (the first match wins); a format
            is a name, a Format, a {"format": name, **params} dict, or None to keep the module in high precision.
            Stored as a list of [pattern, format] pairs so the order survives config.json (written with sorted keys).
        skip_modules: glob patterns kept in high precision when no override matches (default: the lm_head).
        act: "bf16" (default: W4A16) or "fp8_e4m3" (the opt-in W4A8 path: activations quantized per token to FP8;
            int4 / mxfp4 formats only, checked here for the format and every override).

    Serialized to config.json as {"quant_method": "fourbit", "format": ..., "format_params": {...},
    "overrides": [[pattern, {"format": ..., ...} | null], ...], "skip_modules": [...], "act": ...,
    "fourbit_version": ...};
    the formats are stored fully resolved, so a reload does not depend on the presets of a later fourbit.
    """

    def __init__(self, format: Any = "nf4", format_params: Optional[Dict[str, Any]] = None,
                 overrides: Any = None, skip_modules: Optional[List[str]] = None, act: Optional[str] = "bf16",
                 **kwargs):
        from .. import __version__  # noqa: PLC0415

        method = kwargs.pop("quant_method", QUANT_METHOD)
        if method != QUANT_METHOD:
            raise ValueError(f"FourbitConfig: quant_method must be {QUANT_METHOD!r}, got {method!r}")
        version = kwargs.pop("fourbit_version", __version__)
        if kwargs:
            raise ValueError(f"FourbitConfig: unknown field(s) {sorted(kwargs)}; fields: format, format_params, "
                             f"overrides, skip_modules, act")
        self.quant_method = QUANT_METHOD
        fmt = _format_of(format, format_params)
        self.format = fmt.name
        self.format_params = dataclasses.asdict(fmt)
        if overrides is None:
            items: List[Tuple[str, Any]] = []
        elif isinstance(overrides, dict):
            items = list(overrides.items())
        else:
            items = [tuple(x) for x in overrides]
        self.overrides = []
        for item in items:
            if len(item) != 2 or not isinstance(item[0], str):
                raise ValueError(f"FourbitConfig: overrides must map glob patterns (str) to formats, got {item!r}")
            pattern, spec = item
            self.overrides.append([pattern, None if spec is None else
                                   _format_dict(_format_of(spec, where=f"override {pattern!r}"))])
        if skip_modules is None:
            skip_modules = list(DEFAULT_SKIP)
        if isinstance(skip_modules, str) or not all(isinstance(s, str) for s in skip_modules):
            raise ValueError(f"FourbitConfig: skip_modules must be a list of glob patterns, got {skip_modules!r}")
        self.skip_modules = list(skip_modules)
        self.act = act
        self.act = self.quant_config().act  # validated there: the act name, and W4A8 against every format
        self.fourbit_version = version

    @property
    def format_config(self) -> Format:
        return _format_of(self.format, self.format_params)

    def quant_config(self, extra_skip: Tuple[str, ...] = ()) -> QuantConfig:
        """The fourbit.QuantConfig this config stands for (extra_skip: more glob patterns to keep)."""
        return QuantConfig(format=self.format_config,
                           overrides=tuple((p, None if f is None else _format_of(f, where=f"override {p!r}"))
                                           for p, f in self.overrides),
                           skip=tuple(self.skip_modules) + tuple(extra_skip), act=self.__dict__.get("act", "bf16"))

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(self.__dict__))

    def __eq__(self, other) -> bool:
        return isinstance(other, FourbitConfig) and self.to_dict() == other.to_dict()


# ------------------------------------------------------------------------------------------------- quantizer

_SAFETENSORS_DTYPES = {
    torch.uint8: "U8", torch.int8: "I8", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3",
}
if hasattr(torch, "float8_e8m0fnu"):
    _SAFETENSORS_DTYPES[torch.float8_e8m0fnu] = "F8_E8M0"


def _checkpoint_header(files) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """name -> (shape, safetensors dtype string) of every tensor of the .safetensors checkpoint files (headers only)."""
    out: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    for path in files or ():
        path = os.fspath(path)
        if not path.endswith(".safetensors"):
            continue
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        for k, v in header.items():
            if k != "__metadata__":
                out[k] = (tuple(v["shape"]), v["dtype"])
    return out


def _linear_shape(mod: nn.Module) -> Tuple[int, int]:
    """(N, K) = (out_features, in_features) of nn.Linear or HF Conv1D (weight [in, out])."""
    w = mod.weight
    return (w.shape[1], w.shape[0]) if type(mod).__name__ == "Conv1D" else (w.shape[0], w.shape[1])


@register_quantizer(QUANT_METHOD)
class FourbitHfQuantizer(HfQuantizer):
    """Quantizes with fourbit at load (after the float weights load) and reloads fourbit checkpoints.

    Pre-quantized checkpoints: before loading, each linear layer that the checkpoint stores quantized (it has
    `<name>.qweight`) becomes an empty QuantLinear of the format the config names for it, and every stored tensor is
    checked against the shape and dtype that format implies; the tensors then load as they are (no re-quantization,
    no dtype cast).
    """

    requires_calibration = False
    quantization_config: FourbitConfig

    def __init__(self, quantization_config, **kwargs):
        if isinstance(quantization_config, dict):
            quantization_config = FourbitConfig(**quantization_config)
        super().__init__(quantization_config, **kwargs)
        self._quantized_names: set = set()

    # --- environment -----------------------------------------------------------------------------------------
    def validate_environment(self, device_map=None, **kwargs):
        devices = set(device_map.values()) if isinstance(device_map, dict) else set()
        if "disk" in devices:
            raise ValueError("fourbit: disk offload is not supported with quantization_config=FourbitConfig(...)")

    def _qconfig(self, model) -> QuantConfig:
        keep = tuple(p for m in (getattr(model, "_keep_in_fp32_modules", None) or ()) for p in (f"*{m}", f"*{m}.*"))
        return self.quantization_config.quant_config(extra_skip=keep)

    # --- loading ---------------------------------------------------------------------------------------------
    def _process_model_before_weight_loading(self, model, checkpoint_files=None, **kwargs):
        self._quantized_names = set()
        if not self.pre_quantized:
            return model
        qconfig = self._qconfig(model)
        header = _checkpoint_header(checkpoint_files)
        prefix = getattr(model, "base_model_prefix", "")

        def stored(key):  # the checkpoint entry of a model key (checkpoints may omit or add the base prefix)
            for k in (key, key[len(prefix) + 1:] if prefix and key.startswith(prefix + ".") else f"{prefix}.{key}"):
                if k in header:
                    return k, header[k]
            return None

        problems = []
        for name, mod in list(model.named_modules()):
            if not _is_linear(mod):
                continue
            N, K = _linear_shape(mod)
            fmt = qconfig.format_for(name)
            if header:
                in_ckpt = stored(f"{name}.qweight") is not None
                if in_ckpt and fmt is None:
                    problems.append(f"{name}.qweight is in the checkpoint but the quantization_config keeps {name} "
                                    f"in high precision")
                    continue
                if not in_ckpt:
                    continue  # stored in high precision (skipped, or its shape did not fit the format)
            else:  # no readable header: the same decision quantize_ makes
                if fmt is None:
                    continue
                try:
                    fmt.check_shape(N, K)
                except ValueError:
                    continue
            try:
                fmt.check_shape(N, K)
            except ValueError as e:
                problems.append(f"{name}: {e}")
                continue
            for tname, (shape, dtype) in expected_tensors(fmt, N, K).items():
                key = f"{name}.{tname}"
                if not header:
                    continue
                found = stored(key)
                want = _SAFETENSORS_DTYPES.get(dtype, str(dtype))
                if found is None:
                    problems.append(f"checkpoint tensor {key} is missing ({fmt.name} [{N}, {K}] stores {tname} "
                                    f"{want} {list(shape)})")
                elif found[1][1] != want:
                    problems.append(f"checkpoint tensor {key} has dtype {found[1][1]}, expected {want} for "
                                    f"{fmt.name} [{N}, {K}]")
                elif tuple(found[1][0]) != tuple(shape):
                    problems.append(f"checkpoint tensor {key} has shape {list(found[1][0])}, expected {list(shape)} "
                                    f"for {fmt.name} [{N}, {K}] (truncated, or from another format/shape)")
            bias = mod.bias
            ql = QuantLinear(K, N, fmt, bias=bias is not None,
                             bias_dtype=bias.dtype if bias is not None else torch.float32, device="meta",
                             act=self.quantization_config.act)
            _set_submodule(model, name, ql)
            self._quantized_names.add(name)
        if problems:
            raise ValueError("fourbit: the checkpoint does not match its quantization_config:\n  "
                             + "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more"
                                                             if len(problems) > 20 else ""))
        return model

    def get_new_dtype(self, converter, param, dtype):
        # quantized tensors load as stored (uint8 codes, float32/float8 scales): never cast them to the model dtype
        targets = getattr(converter, "target_patterns", None) or ()
        for t in targets:
            module, _, tname = str(t).rpartition(".")
            if module in self._quantized_names and tname != "bias":
                return None
        return super().get_new_dtype(converter, param, dtype)

    def _process_model_after_weight_loading(self, model, **kwargs):
        if not self.pre_quantized:
            quantize_(model, self._qconfig(model), progress=False)
            return model
        for name in self._quantized_names:
            mod = model.get_submodule(name)
            for tname in expected_tensors(mod.format, mod.out_features, mod.in_features):
                t = getattr(mod, tname)
                if t.is_meta:
                    raise ValueError(f"fourbit: checkpoint tensor {name}.{tname} was not loaded")
                if t.data_ptr() % 64:  # safetensors offsets are 8-byte aligned; the kernels want 16 (64: cache line)
                    setattr(mod, tname, t.clone(memory_format=torch.contiguous_format))
            if mod.bias is not None:
                mod.bias.requires_grad_(False)
        return model

    def param_needs_quantization(self, model, param_name: str, **kwargs) -> bool:
        return False  # quantize_ runs once the float weights are in (see _process_model_after_weight_loading)

    # --- saving / capabilities --------------------------------------------------------------------------------
    def get_state_dict_and_metadata(self, model):
        from .. import __version__  # noqa: PLC0415
        return None, {"fourbit_version": __version__}

    def is_serializable(self, **kwargs) -> bool:
        return True

    @property
    def is_trainable(self) -> bool:
        return False

    @property
    def is_compileable(self) -> bool:
        return True

    def _dequantize(self, model, dtype=None):
        """Replace every QuantLinear by an nn.Linear holding its dequantized weight."""
        for name, mod in list(model.named_modules()):
            if isinstance(mod, QuantLinear):
                w = mod.quantized_weight().dequantize(dtype or torch.float32)
                lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None,
                                device=w.device, dtype=w.dtype)
                with torch.no_grad():
                    lin.weight.copy_(w)
                    if mod.bias is not None:
                        lin.bias.copy_(mod.bias)
                _set_submodule(model, name, lin)
        return model
