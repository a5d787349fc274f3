"""Heavy libraries imported when first used, not when advrec is imported.

``torch = lazy("torch")`` binds a stand-in module: the first attribute read imports the real
module and copies its namespace into the stand-in, so later reads cost what a module's do. The
command line stays quick (``advrec --help``, ``advrec validate``) because a command that never
touches torch, scipy, pandas or numba never imports them. Submodules work too
(``F = lazy("torch.nn.functional")``). Module-level code must not touch a stand-in (a class
base, a decorator or a default argument would import it at once).
"""

from __future__ import annotations

import importlib
import types
from typing import Any

_PROBES = frozenset({"__wrapped__", "__signature__", "__origin__", "__args__", "__path__",
                     "__file__", "__test__", "__qualname__"})  # introspection, not a use


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:  # only called for names not in the namespace yet
        if attr in _PROBES:
            raise AttributeError(attr)
        module = self.__dict__.get("_lazy_module")
        if module is None:
            module = importlib.import_module(self.__name__)
            self.__dict__.update(vars(module))
            self.__dict__["_lazy_module"] = module
        value = getattr(module, attr)  # a name the module gained later (a submodule)
        self.__dict__[attr] = value
        return value


def lazy(name: str) -> types.ModuleType:
    """A stand-in for the module ``name`` that imports it on first use."""
    return _LazyModule(name)
