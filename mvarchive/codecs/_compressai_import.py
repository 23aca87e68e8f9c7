"""Imports CompressAI without paying for its point-cloud stack, which no codec here uses.

``import compressai`` (1.2.8) imports every subpackage. Three of them import ``torch_geometric``
(about 2.4 s idle, 1.4 s of it ``torch._dynamo`` through ``torch_geometric.isinstance``):
``compressai.transforms`` (its ``point`` transforms), ``compressai.registry.transforms``
(``TRANSFORMS`` copies ``torch_geometric.transforms.__dict__`` at import) and, through the
registry, ``compressai.datasets`` (which also imports pandas and requests). And
``compressai.entropy_models`` imports ``scipy.stats`` (about 0.9 s) for the one call
``scipy.stats.norm.ppf`` in ``GaussianConditional.update()``. Measured on the 2-core VM: a
one-group restore took 6.9 s, ``import mvarchive.codecs`` 4.3 s of it (benchmarks/results/
cli_latency.md has the figures after this module).

:func:`import_compressai` imports CompressAI with those modules deferred, never replaced:

- ``compressai.datasets`` and ``compressai.transforms`` are the real modules, executed on first
  use (the first attribute they do not have yet, or ``dir()``). Not ``importlib.util.LazyLoader``:
  its modules execute on *any* attribute access, and torch's import calls ``inspect.getmodule``,
  which reads ``__file__`` of every module in ``sys.modules``; a later ``import torch_geometric``
  then executed ``compressai.transforms`` halfway through itself and failed on a circular import.
- ``compressai.registry.transforms`` is a stand-in holding the same two names: ``TRANSFORMS``
  fills itself on first use, with the same keys, values and precedence as CompressAI's
  (torchvision's, then torch_geometric's, then the transforms ``compressai.transforms``
  registers), and ``register_transform`` writes into it. ``compressai.registry.DATASETS`` fills
  itself the same way from ``compressai.datasets``.
- ``scipy.stats`` is held back only while CompressAI imports (a deferred module in
  ``sys.modules``, taken out again afterwards if nothing used it), so ``scipy.stats.norm.ppf``
  imports the real ``scipy.stats`` on the first ``update()``: the same function runs, the tables
  are the same bytes. A restore still pays for it there (every load builds the tables); a command
  that builds codecs without coding (``mvarchive codecs``) does not.

``torch_geometric`` and ``scipy.stats`` stay ordinary packages: a later ``import`` gets the real
ones. Nothing is done when CompressAI or torch_geometric is already imported, and another
CompressAI version is imported plainly (what it imports at module level is unknown here).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

from . import _compressai_warnings  # noqa: F401  (the warning filter must precede CompressAI's import)

__all__ = ["COMPRESSAI_VERSION", "DEFERRED_MODULES", "import_compressai"]

#: The CompressAI release whose module-level imports this module was written against.
COMPRESSAI_VERSION = "1.2.8"
#: CompressAI subpackages executed on first use instead of at ``import compressai``.
DEFERRED_MODULES = ("compressai.datasets", "compressai.transforms")
_TRANSFORMS_MODULE = "compressai.registry.transforms"

#: One lock for executing a deferred module and filling a table: both import modules, and a
#: table's fill executes a deferred module, so it is re-entrant; other threads wait for the result.
_LOCK = threading.RLock()
#: Names of deferred modules being executed now (guarded by ``_LOCK``).
_EXECUTING: set[str] = set()

_T = TypeVar("_T")


class _DeferredModule(types.ModuleType):
    """A real module whose code runs when something first asks it for a name it lacks.

    It starts with the attributes an import sets before executing (``__name__``, ``__spec__``,
    ``__file__``, ``__path__``, ...), so looking at a module does not run it; using it does.
    Afterwards it is a plain module.
    """

    def __getattr__(self, name: str) -> Any:
        execute(self)
        if isinstance(self, _DeferredModule):  # its own code is running on this thread
            raise AttributeError(f"partially initialized module {self.__name__!r} has no attribute {name!r}")
        return getattr(self, name)

    def __dir__(self) -> list[str]:
        execute(self)
        return sorted(self.__dict__)


def execute(module: types.ModuleType) -> None:
    """Run a deferred module's code now (no-op for a module that already ran or is running on
    this thread). A failure propagates and leaves it deferred, so the next use tries again."""
    if not isinstance(module, _DeferredModule):
        return
    with _LOCK:
        spec = module.__spec__
        if not isinstance(module, _DeferredModule) or spec is None or spec.name in _EXECUTING:
            return
        assert spec.loader is not None
        _EXECUTING.add(spec.name)
        try:
            spec.loader.exec_module(module)
            module.__class__ = types.ModuleType  # type: ignore[assignment]  # from here on, a plain module
        finally:
            _EXECUTING.discard(spec.name)


def _deferred(spec: importlib.machinery.ModuleSpec) -> _DeferredModule:
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredModule
    assert isinstance(module, _DeferredModule)
    return module


def _importing(package: str) -> bool:
    """Whether ``package`` or one of its submodules is being imported right now."""
    if package in _EXECUTING:
        return True
    prefix = package + "."
    for name, module in list(sys.modules.items()):
        if name == package or name.startswith(prefix):
            spec = module.__dict__.get("__spec__")
            if getattr(spec, "_initializing", False):
                return True
    return False


class _FillingTable(dict[str, Any]):
    """A CompressAI registry table whose entries come from modules imported on first use.

    Reading it in any way (lookup, ``in``, iteration, ``len``, comparison, copy) first adds
    ``base()`` and then executes ``package``, whose modules register themselves into it, so the
    table then holds what ``import compressai`` would have put there, in that order. A write
    (a ``register_*`` decorator) does the same first, except while ``package`` is itself being
    imported: then the write is one of those registrations, and that import completes the table.
    """

    # Class defaults: a copy made without ``__init__`` (pickle sets items before state) is complete.
    _package = ""
    _base: Callable[[], dict[str, Any]] | None = None
    _ready = True

    def __init__(self, package: str, base: Callable[[], dict[str, Any]] | None = None) -> None:
        super().__init__()
        self._package = package
        self._base = base
        self._ready = False

    def _fill(self, *, writing: bool = False) -> None:
        if self._ready:
            return
        with _LOCK:
            if self._ready:
                return
            if self._base is not None:
                dict.update(self, self._base())  # empty until now: every write comes through here
                self._base = None
            if writing and _importing(self._package):
                return
            module = sys.modules.get(self._package)
            if module is None:
                module = importlib.import_module(self._package)
            execute(module)
            self._ready = True


def _reading(name: str) -> Callable[..., Any]:
    method = getattr(dict, name)

    def filled_first(self: _FillingTable, *args: Any, **kwargs: Any) -> Any:
        self._fill()
        return method(self, *args, **kwargs)

    filled_first.__name__ = name
    return filled_first


def _writing(name: str) -> Callable[..., Any]:
    method = getattr(dict, name)

    def filled_first(self: _FillingTable, *args: Any, **kwargs: Any) -> Any:
        self._fill(writing=True)
        return method(self, *args, **kwargs)

    filled_first.__name__ = name
    return filled_first


for _name in ("__getitem__", "__contains__", "__iter__", "__len__", "__repr__", "__eq__", "__ne__", "__or__",
              "__ror__", "__reversed__", "get", "keys", "values", "items", "copy"):
    setattr(_FillingTable, _name, _reading(_name))
for _name in ("__setitem__", "__delitem__", "__ior__", "setdefault", "update", "pop", "popitem", "clear"):
    setattr(_FillingTable, _name, _writing(_name))


def _torch_transforms() -> dict[str, Any]:
    """What CompressAI's ``compressai/registry/transforms.py`` puts in ``TRANSFORMS`` at import:
    torchvision's transform classes, then torch_geometric's (the latter win on a shared name)."""
    geometric = importlib.import_module("torch_geometric.transforms")  # imported first, as CompressAI does
    vision = importlib.import_module("torchvision.transforms")
    table = {k: v for k, v in vars(vision).items() if k[0].isupper()}
    table.update({k: v for k, v in vars(geometric).items() if k[0].isupper()})
    return table


def _transforms_registry(spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
    """The stand-in for ``compressai.registry.transforms``: its two public names, the table
    filling itself on first use. It keeps the real module's spec, so ``importlib.reload``
    runs CompressAI's own code."""
    module = importlib.util.module_from_spec(spec)
    table = _FillingTable("compressai.transforms", _torch_transforms)

    def register_transform(name: str) -> Callable[[_T], _T]:
        """Decorator registering a transform class under ``name`` (CompressAI's API)."""

        def decorator(cls: _T) -> _T:
            table[name] = cls
            return cls

        return decorator

    module.__dict__.update(TRANSFORMS=table, register_transform=register_transform,
                           __all__=["TRANSFORMS", "register_transform"])
    return module


def _datasets_registry() -> None:
    """``compressai.registry.DATASETS`` as a table filled by ``compressai.datasets`` on first use
    (``register_dataset`` writes to the module global, so both names get the same table)."""
    registry = sys.modules["compressai.registry"]
    registry_torch = sys.modules["compressai.registry.torch"]
    table = _FillingTable("compressai.datasets")
    dict.update(table, registry_torch.DATASETS)
    registry_torch.DATASETS = table  # type: ignore[attr-defined]
    registry.DATASETS = table  # type: ignore[attr-defined]


def import_compressai() -> bool:
    """Import CompressAI, deferring its point-cloud modules and ``scipy.stats`` when that is
    safe (see the module docstring). Returns whether anything was deferred."""
    try:
        version = metadata.version("compressai")
    except metadata.PackageNotFoundError:
        version = None
    if version != COMPRESSAI_VERSION or "compressai" in sys.modules or "torch_geometric" in sys.modules:
        import compressai  # noqa: F401

        return False
    top = importlib.util.find_spec("compressai")
    assert top is not None and top.submodule_search_locations is not None
    paths = list(top.submodule_search_locations)
    held: dict[str, types.ModuleType] = {}
    for name in DEFERRED_MODULES:
        held[name] = _deferred(_spec(name, paths))
    registry_spec = _spec("compressai.registry", paths)
    assert registry_spec.submodule_search_locations is not None
    held[_TRANSFORMS_MODULE] = _transforms_registry(_spec(_TRANSFORMS_MODULE, registry_spec.submodule_search_locations))
    stats = _scipy_stats()
    if stats is not None:
        held["scipy.stats"] = stats
    sys.modules.update(held)
    try:
        import compressai.registry
    except BaseException:
        for name, module in held.items():
            if sys.modules.get(name) is module and (name == _TRANSFORMS_MODULE or isinstance(module, _DeferredModule)):
                del sys.modules[name]
        raise
    finally:
        if isinstance(stats, _DeferredModule) and sys.modules.get("scipy.stats") is stats:
            del sys.modules["scipy.stats"]  # unused: the next ``import scipy.stats`` is an ordinary one
    compressai.registry.transforms = held[_TRANSFORMS_MODULE]  # an import sets this; sys.modules did not
    _datasets_registry()
    return True


def _spec(name: str, paths: list[str]) -> importlib.machinery.ModuleSpec:
    """A submodule's spec, found without importing its parent package."""
    spec = importlib.machinery.PathFinder.find_spec(name, paths)
    if spec is None:
        raise ImportError(f"{name} not found in {paths}", name=name)
    return spec


def _scipy_stats() -> _DeferredModule | None:
    """A deferred ``scipy.stats`` to hold back while CompressAI imports (None: already imported
    or not installed)."""
    if "scipy.stats" in sys.modules:
        return None
    scipy = importlib.util.find_spec("scipy")
    if scipy is None or scipy.submodule_search_locations is None:
        return None
    return _deferred(_spec("scipy.stats", list(scipy.submodule_search_locations)))


import_compressai()
