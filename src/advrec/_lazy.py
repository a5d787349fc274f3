"""Heavy libraries imported when first used, not when advrec is imported.

``torch = lazy("torch")`` binds a stand-in module: the first attribute read imports the real
module and copies its namespace into the stand-in, so later reads cost what a module's do. The
command line stays quick (``advrec --help``, ``advrec validate``) because a command that never
touches torch, scipy, pandas or numba never imports them. Submodules work too
(``F = lazy("torch.nn.functional")``). Module-level code must not touch a stand-in (a class
base, a decorator or a default argument would import it at once). :func:`compile_once` does the
same for numba kernels: their compile is paid up front, once per installation, with a notice.
"""

from __future__ import annotations

import importlib
import sys
import time
import types
from collections.abc import Callable, Sequence
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


_compiled: set[str] = set()


def _cache_is_warm(dispatcher: Any) -> bool:
    """Whether numba's on-disk cache holds an up-to-date build of ``dispatcher`` (True when this
    cannot be told: no notice is better than a wrong one)."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # numba internals moved: assume warm
        return True


def compile_once(what: str, dispatchers: Sequence[Any], warm: Callable[[], object]) -> None:
    """Compile numba kernels up front with a notice on stderr when their on-disk cache is cold.

    The JIT is paid once per installation (later processes load the cache in a fraction of a
    second) and the user is told so, instead of a first call that silently takes seconds.
    ``warm`` makes a tiny call with the real argument types, which compiles and caches them.
    """
    if what in _compiled:
        return
    _compiled.add(what)
    if all(_cache_is_warm(d) for d in dispatchers):
        return
    print(f"advrec: compiling {what} (once per installation; later runs load it from the "
          f"cache) ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    warm()
    print(f"advrec: {what} compiled in {time.perf_counter() - start:.1f} s", file=sys.stderr,
          flush=True)
