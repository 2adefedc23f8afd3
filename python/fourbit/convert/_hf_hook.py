"""Registers fourbit with Hugging Face transformers lazily: no transformers import cost for users who don't use it.

`import fourbit` calls `install()`. If transformers is not installed, nothing happens. If its quantizer registry
(`transformers.quantizers.auto`) is already imported, fourbit registers now; otherwise a post-import hook waits for
that module (every `from_pretrained` imports it) and registers right after it loads. So a checkpoint saved with
`quant_method: "fourbit"` reloads after a plain `import fourbit`, and `FourbitConfig` is importable from
`fourbit.convert.hf` (or as `fourbit.FourbitConfig`, resolved on first access).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings

TARGET = "transformers.quantizers.auto"
_installed = False


def register_now(strict: bool = False) -> bool:
    """Import fourbit.convert.hf (which registers "fourbit"). strict=False: warn instead of raising."""
    try:
        from . import hf  # noqa: F401,PLC0415
    except Exception as e:  # noqa: BLE001 - never break the user's transformers import
        if strict:
            raise
        warnings.warn(f"fourbit: Hugging Face integration not registered: {e}", stacklevel=3)
        return False
    return True


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        module.__loader__ = module.__spec__.loader = self.inner  # hand the module back its own loader
        register_now()

    def __getattr__(self, name):  # get_source, get_filename, ... of the wrapped loader
        return getattr(self.inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loader of transformers.quantizers.auto so fourbit registers once it has executed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                sys.meta_path[:] = [f for f in sys.meta_path if f is not self]  # one shot
                return spec
        return None


def install() -> None:
    """Called by `import fourbit`: register with transformers now or when it loads its quantizers; cheap."""
    global _installed
    if _installed:
        return
    _installed = True
    if TARGET in sys.modules:
        register_now()
        return
    try:
        if importlib.util.find_spec("transformers") is None:
            return
    except (ImportError, ValueError):
        return
    sys.meta_path.insert(0, _Finder())
