"""Plugin loading through pluggy and the ``ganreg`` entry-point group.

A plugin is a module (named by an entry point in group ``ganreg``) with a
``@hookimpl def ganreg_register(register)`` function that calls
``register(kind, name, factory, params=..., summary=..., paper=...)``.
Built-in components load through exactly this path.

Entry points are loaded one at a time, each guarded: a plugin that raises, or
registers nothing (no ``@hookimpl``-marked ``ganreg_register``), is recorded as
failed with its error and the plugin's own ``file:line`` (``ganreg plugins``
shows it) and every other command keeps working. An entry-point name that two
distributions define is loaded from neither (no silent winner) until all but
one are uninstalled or blocked.

Environment switches:

``GANREG_NO_PLUGIN_AUTOLOAD=1``
    do not load entry points (the test suite uses it, then loads what it needs)
``GANREG_BLOCK_PLUGINS=a,b``
    skip the named plugins: entry-point names or distribution names
``GANREG_STRICT_PLUGINS=1``
    re-raise a plugin's error instead of recording it
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from ganreg.errors import ComponentError, UserError
from ganreg.registry import ENV_STRICT, Registry, env_flag, plugin_location, strict_plugins  # noqa: F401 (ENV_STRICT: public here)

hookspec = pluggy.HookspecMarker("ganreg")
hookimpl = pluggy.HookimplMarker("ganreg")

ENV_NO_AUTOLOAD = "GANREG_NO_PLUGIN_AUTOLOAD"
ENV_BLOCK = "GANREG_BLOCK_PLUGINS"


class HookSpecs:
    @hookspec
    def ganreg_register(self, register: Any) -> None:  # pragma: no cover - spec
        """Register components by calling ``register(kind, name, factory, params=...)``."""


@dataclass
class PluginStatus:
    name: str
    """Its key in ``Registry.plugins``: the entry-point name, or ``"name (distribution)"`` when
    several distributions define that name."""
    distribution: str
    version: str
    status: str  # "loaded" | "failed" | "blocked"
    error: str | None = None
    components: list[str] = field(default_factory=list)



def _normalise(dist: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``Ganreg_DFGAN`` is ``ganreg-dfgan``."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def blocked_plugins() -> set[str]:
    return {p.strip() for p in os.environ.get(ENV_BLOCK, "").split(",") if p.strip()}


def _describe(exc: BaseException, package: str | None) -> str:
    """One plugin error for ``ganreg plugins``: message, the plugin's own file:line, fix."""
    where = plugin_location(exc, package)
    at = f" ({where})" if where else ""
    if isinstance(exc, UserError):
        return exc.message + at + (f"\n  fix: {exc.fix}" if exc.fix else "")
    return f"{type(exc).__name__}: {exc}{at}"


def _package_of(plugin: object) -> str | None:
    """Top-level package of a plugin module or object (None for ad-hoc namespaces)."""
    module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
    return None if module in {"builtins", "types"} else module.partition(".")[0]


def _registered_nothing(manager: pluggy.PluginManager, plugin: object, name: str) -> ComponentError | None:
    """Why a plugin has no ``ganreg_register`` hook for pluggy to call, or None when it has one."""
    if manager.hook.ganreg_register.get_hookimpls():
        return None
    unknown = sorted(  # what pluggy's check_pending() rejects: marked hooks that match no spec
        hook
        for hook, caller in vars(manager.hook).items()
        if not hook.startswith("_") and not caller.has_spec() and any(not i.optionalhook for i in caller.get_hookimpls())
    )
    if unknown:
        why = f"it marks unknown hook(s) {', '.join(repr(u) for u in unknown)} with @hookimpl, and no 'ganreg_register'"
    elif callable(getattr(plugin, "ganreg_register", None)):
        why = "its ganreg_register is not marked with @hookimpl"
    else:
        why = "it has no @hookimpl-marked ganreg_register"
    module = f" ({plugin.__name__})" if isinstance(plugin, ModuleType) else ""
    return ComponentError(
        f"plugin {name!r}{module} registered nothing: {why}",
        "mark `def ganreg_register(register)` with `@hookimpl` (`from ganreg.plugins import hookimpl`)",
    )


def load_plugin(
    registry: Registry,
    plugin: ModuleType | object,
    name: str,
    version: str = "0",
    distribution: str = "",
    strict: bool | None = None,
) -> PluginStatus:
    """Register one plugin object (module or instance with ``ganreg_register``).

    Its registrations are all-or-nothing: if the hook raises, whatever it
    registered is removed again and the plugin is recorded as failed. A plugin
    without a ``@hookimpl``-marked ``ganreg_register`` fails too.
    """
    strict = strict_plugins() if strict is None else strict
    status = PluginStatus(name=name, distribution=distribution or name, version=version, status="loaded")
    manager = pluggy.PluginManager("ganreg")
    manager.add_hookspecs(HookSpecs)
    before = {c.qualified + "/" + c.kind for c in registry.components()}
    try:
        manager.register(plugin, name=name)
        nothing = _registered_nothing(manager, plugin, name)
        if nothing is not None:
            raise nothing
        manager.hook.ganreg_register(register=registry.make_register(name, version, distribution))
    except Exception as exc:
        registry.remove_plugin(name)
        status.status = "failed"
        status.error = _describe(exc, _package_of(plugin))
        registry.plugins[name] = status
        if strict:
            raise
        return status
    status.components = sorted(
        f"{c.kind}:{c.qualified}" for c in registry.components() if c.qualified + "/" + c.kind not in before
    )
    registry.plugins[name] = status
    return status


def _dist_of(ep: Any) -> tuple[str, str]:
    """(distribution name, version) of an entry point; its own name when it has no distribution."""
    return (ep.dist.name, ep.dist.version) if ep.dist is not None else (ep.name, "0")


def _is_blocked(ep: Any, blocked: set[str]) -> bool:
    return ep.name in blocked or _normalise(_dist_of(ep)[0]) in {_normalise(b) for b in blocked}


def _entry_point_error(ep: Any, exc: Exception) -> str:
    """What went wrong importing an entry point's object; names the entry point when its module or
    attribute does not exist."""
    dist = _dist_of(ep)[0]
    module, attr, value = getattr(ep, "module", ""), getattr(ep, "attr", None), getattr(ep, "value", "")
    named = f"entry point '{ep.name} = {value}' of distribution {dist!r}"
    fix = f"reinstall {dist!r} (its maintainers: check [project.entry-points.ganreg] in its pyproject.toml)"
    if isinstance(exc, ModuleNotFoundError) and exc.name and module and (module == exc.name or module.startswith(exc.name + ".")):
        return _describe(ComponentError(f"{named} names module {module!r}, which cannot be found ({exc})", fix), None)
    loaded = sys.modules.get(module) if module else None
    if isinstance(exc, AttributeError) and attr and loaded is not None and not hasattr(loaded, attr.split(".")[0]):
        return _describe(ComponentError(f"{named} names {attr!r}, which module {module!r} does not define", fix), None)
    return _describe(exc, module.partition(".")[0] if module else None)


def _load_entry_point(registry: Registry, ep: Any, strict: bool) -> None:
    dist, version = _dist_of(ep)
    try:
        module = ep.load()
    except Exception as exc:
        if strict:
            raise
        registry.plugins[ep.name] = PluginStatus(ep.name, dist, version, "failed", _entry_point_error(ep, exc))
        return
    load_plugin(registry, module, ep.name, version, ep.dist.name if ep.dist is not None else "", strict=strict)


def _clash(registry: Registry, name: str, eps: list[Any], blocked: set[str], strict: bool) -> None:
    """Several distributions define entry point ``name``: load none of them (no silent winner, no
    privilege for bundled plugins) unless all but one are blocked; each other one gets a row
    ``"name (distribution)"``."""
    free = [ep for ep in eps if not _is_blocked(ep, blocked)]
    if len(free) == 1:
        _load_entry_point(registry, free[0], strict)
    dists = [_dist_of(ep)[0] for ep in eps]
    free_dists = [_dist_of(ep)[0] for ep in free]
    for ep in eps:
        dist, version = _dist_of(ep)
        key = f"{name} ({dist})"
        if _is_blocked(ep, blocked):
            registry.plugins[key] = PluginStatus(key, dist, version, "blocked", f"blocked by {ENV_BLOCK}")
            continue
        if len(free) == 1:
            continue
        keep = next(d for d in free_dists if d != dist)
        error = ComponentError(
            f"{len(eps)} distributions define the ganreg entry point {name!r}: "
            + ", ".join(f"{d} ({e.value})" for d, e in zip(dists, eps))
            + "; none of them is loaded",
            f"uninstall all but one, or block the others by distribution name: "
            f"{ENV_BLOCK}={','.join(d for d in free_dists if d != keep)} loads only {keep}'s",
        )
        if strict:
            raise error
        registry.plugins[key] = PluginStatus(key, dist, version, "failed", _describe(error, None))


def load_entry_points(registry: Registry, strict: bool | None = None) -> None:
    """Load every entry point of group ``ganreg``, each guarded."""
    strict = strict_plugins() if strict is None else strict
    blocked = blocked_plugins()
    by_name: dict[str, dict[str, Any]] = {}
    for ep in metadata.entry_points(group="ganreg"):  # one per (name, distribution): a dist seen twice is one
        by_name.setdefault(ep.name, {}).setdefault(_normalise(_dist_of(ep)[0]), ep)
    for name in sorted(by_name):
        eps = [by_name[name][dist] for dist in sorted(by_name[name])]
        if len(eps) > 1:
            _clash(registry, name, eps, blocked, strict)
        elif _is_blocked(eps[0], blocked):
            dist, version = _dist_of(eps[0])
            registry.plugins[name] = PluginStatus(name, dist, version, "blocked", f"blocked by {ENV_BLOCK}")
        else:
            _load_entry_point(registry, eps[0], strict)


_default: Registry | None = None


def get_registry(autoload: bool | None = None) -> Registry:
    """The process-wide registry, with installed plugins loaded on first use
    (unless ``GANREG_NO_PLUGIN_AUTOLOAD`` is set)."""
    global _default
    if _default is None:
        _default = Registry()
        if autoload is None:
            autoload = not env_flag(ENV_NO_AUTOLOAD)
        if autoload:
            load_entry_points(_default)
    return _default


def reset_registry() -> None:
    """Forget the process-wide registry (tests)."""
    global _default
    _default = None
