"""The plugin manager: built-in plugins, entry points of group ``nbsim``, and registries.

:func:`load_plugins` is explicit and idempotent.  It registers the built-in plugins, then every
installed entry point of group ``nbsim`` (a plugin that fails to import is recorded with its
error and the others keep working), then runs the ``nbsim_register_*`` hooks to fill the
named registries.  Environment switches: ``NBSIM_DISABLE_PLUGINS`` (comma-separated entry
point names, or ``*`` for all entry points) and ``NBSIM_TRACE_PLUGINS=1`` (report loading on
stderr).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pluggy

from nbsim.errors import PluginError
from nbsim.plugins import hookspecs
from nbsim.plugins.registry import Registry
from nbsim.protocols import (
    DetectorResponse,
    ImageTransform,
    LatticeFactor,
    PhiPolicy,
    PolarizationModel,
)

try:  # Python 3.11's importlib.metadata lacks some conveniences; the backport has them
    import importlib_metadata as metadata
except ImportError:  # pragma: no cover
    from importlib import metadata

GROUP = "nbsim"

DEFAULT_PLUGINS = (
    "nbsim.plugins.builtins.lattice:BuiltinLatticePlugin",
    "nbsim.plugins.builtins.polarization:BuiltinPolarizationPlugin",
    "nbsim.plugins.builtins.responses:BuiltinResponsePlugin",
    "nbsim.plugins.builtins.trace:BuiltinTracePlugin",
)


@attrs.frozen
class PluginInfo:
    name: str
    origin: str  # "built-in" or "entry point"
    distribution: str
    version: str
    hooks: tuple[str, ...]
    provides: tuple[str, ...]


@attrs.frozen
class OptionSpec:
    """A command-line option a plugin adds to ``nbsim run``."""

    name: str  # its command-line spelling: "--c-threads"
    keyword: str  # its Python name, the key configure() receives: "threads"
    type: Any
    default: Any
    help: str
    owner: str  # name of the registered object it configures
    plugin: str


@attrs.define
class PluginSystem:
    manager: pluggy.PluginManager
    phi_policies: Registry
    lattice_factors: Registry
    polarization_models: Registry
    image_transforms: Registry
    detector_responses: Registry
    options: list[OptionSpec]
    failures: list[tuple[str, str]]
    info: list[PluginInfo]

    def registry(self, kind: str) -> Registry:
        return {"phi policy": self.phi_policies, "lattice factor": self.lattice_factors,
                "polarization model": self.polarization_models, "image transform": self.image_transforms,
                "detector response": self.detector_responses}[kind]


def _import_object(spec: str):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    if attr:
        obj = getattr(obj, attr)
        if isinstance(obj, type):
            obj = obj()
    return obj


def _trace(msg: str) -> None:
    if os.environ.get("NBSIM_TRACE_PLUGINS"):
        print(f"nbsim: plugins: {msg}", file=sys.stderr)


def _call_register_hook(system: PluginSystem, hook_name: str, registry: Registry) -> list[tuple[str, str]]:
    provided = []
    caller = getattr(system.manager.hook, hook_name)
    for impl in caller.get_hookimpls():
        owner = impl.plugin_name

        def register(obj, _owner=owner):
            registry.register(obj, owner=_owner)
            provided.append((_owner, f"{registry.kind}:{obj.name}"))

        impl.function(register=register)
    return provided


def build_system(*, entry_points: bool = True, extra: tuple[Any, ...] = ()) -> PluginSystem:
    """A fresh plugin system (used by :func:`load_plugins` and by tests)."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    system = PluginSystem(pm, Registry("phi policy", PhiPolicy), Registry("lattice factor", LatticeFactor),
                          Registry("polarization model", PolarizationModel),
                          Registry("image transform", ImageTransform),
                          Registry("detector response", DetectorResponse), [], [], [])
    origins: dict[str, tuple[str, str, str]] = {}
    for spec in DEFAULT_PLUGINS:
        name = "nbsim." + spec.rpartition(":")[2]
        pm.register(_import_object(spec), name=name)
        origins[name] = ("built-in", "nbsim", _version("nbsim"))
    for i, obj in enumerate(extra):
        name = getattr(obj, "plugin_name", None) or f"extra-{i}"
        pm.register(obj, name=name)
        origins[name] = ("in-process", *_distribution_of(obj))
    disabled = {x.strip() for x in os.environ.get("NBSIM_DISABLE_PLUGINS", "").split(",") if x.strip()}
    if entry_points and "*" not in disabled:
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            if ep.name in disabled:
                _trace(f"{ep.name}: disabled by NBSIM_DISABLE_PLUGINS")
                continue
            dist = ep.dist.name if ep.dist else ""
            try:
                obj = ep.load()
                if isinstance(obj, type):
                    obj = obj()
                if pm.has_plugin(ep.name):
                    raise PluginError(f"plugin name {ep.name!r} is already taken")
                pm.register(obj, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                system.failures.append((ep.name, f"{type(exc).__name__}: {exc}"))
                _trace(f"{ep.name}: failed to load: {exc}")
                continue
            origins[ep.name] = ("entry point", dist, ep.dist.version if ep.dist else "")
            _trace(f"{ep.name}: loaded from {dist}")
    pm.check_pending()

    provided: list[tuple[str, str]] = []
    for hook_name, registry in (
        ("nbsim_register_phi_policies", system.phi_policies),
        ("nbsim_register_lattice_factors", system.lattice_factors),
        ("nbsim_register_polarization_models", system.polarization_models),
        ("nbsim_register_image_transforms", system.image_transforms),
        ("nbsim_register_detector_responses", system.detector_responses),
    ):
        provided += _call_register_hook(system, hook_name, registry)
    for impl in pm.hook.nbsim_register_options.get_hookimpls():
        def register_option(name, *, keyword=None, type=str, default=None, help="", owner, _plugin=impl.plugin_name):
            keyword = keyword or name.lstrip("-").replace("-", "_")
            system.options.append(OptionSpec(name, keyword, type, default, help, owner, _plugin))

        impl.function(register=register_option)

    for name, plugin in pm.list_name_plugin():
        origin, dist, version = origins.get(name, ("unknown", "", ""))
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        system.info.append(PluginInfo(name, origin, dist, version, hooks,
                                      tuple(p for owner, p in provided if owner == name)))
    return system


def _distribution_of(obj) -> tuple[str, str]:
    """(distribution, version) of the installed package an object's class comes from, or blanks."""
    top = type(obj).__module__.partition(".")[0]
    names = metadata.packages_distributions().get(top, [])
    return (names[0], _version(names[0])) if names else ("", "")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


_SYSTEM: PluginSystem | None = None


def load_plugins() -> PluginSystem:
    """The process-wide plugin system, built on first use."""
    global _SYSTEM
    if _SYSTEM is None:
        _SYSTEM = build_system()
    return _SYSTEM


def reset_plugins() -> None:
    """Forget the process-wide plugin system (tests use this)."""
    global _SYSTEM
    _SYSTEM = None


@contextlib.contextmanager
def plugins_in_use(system: PluginSystem) -> Iterator[PluginSystem]:
    """Make ``system`` the process-wide plugin system while the block runs: a test suite
    builds one from the plugin objects it means to test (``build_system(entry_points=False,
    extra=(...))``) instead of relying on what is installed."""
    global _SYSTEM
    previous, _SYSTEM = _SYSTEM, system
    try:
        yield system
    finally:
        _SYSTEM = previous


def hook_caller(system: PluginSystem, name: str) -> Callable | None:
    """The hook caller ``name`` if any plugin implements it, else None."""
    caller = getattr(system.manager.hook, name)
    return caller if caller.get_hookimpls() else None
