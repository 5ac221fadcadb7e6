"""Plugin loading through pluggy and the ``ganreg`` entry-point group.

A plugin is a module (named by an entry point in group ``ganreg``) with a
``@hookimpl def ganreg_register(register)`` function that calls
``register(kind, name, factory, params=..., summary=..., paper=...)``.
Built-in components load through exactly this path.

Entry points are loaded one at a time, each guarded: a plugin that raises is
recorded as failed with its error (``ganreg plugins`` shows it) and every
other command keeps working.

Environment switches:

``GANREG_NO_PLUGIN_AUTOLOAD=1``
    do not load entry points (the test suite uses it, then loads what it needs)
``GANREG_BLOCK_PLUGINS=a,b``
    skip the named plugins
``GANREG_STRICT_PLUGINS=1``
    re-raise a plugin's error instead of recording it
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from ganreg.registry import Registry

hookspec = pluggy.HookspecMarker("ganreg")
hookimpl = pluggy.HookimplMarker("ganreg")

ENV_NO_AUTOLOAD = "GANREG_NO_PLUGIN_AUTOLOAD"
ENV_BLOCK = "GANREG_BLOCK_PLUGINS"
ENV_STRICT = "GANREG_STRICT_PLUGINS"


class HookSpecs:
    @hookspec
    def ganreg_register(self, register: Any) -> None:  # pragma: no cover - spec
        """Register components by calling ``register(kind, name, factory, params=...)``."""


@dataclass
class PluginStatus:
    name: str
    distribution: str
    version: str
    status: str  # "loaded" | "failed" | "blocked"
    error: str | None = None
    components: list[str] = field(default_factory=list)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def blocked_plugins() -> set[str]:
    return {p.strip() for p in os.environ.get(ENV_BLOCK, "").split(",") if p.strip()}


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
    registered is removed again and the plugin is recorded as failed.
    """
    strict = _truthy(os.environ.get(ENV_STRICT)) if strict is None else strict
    status = PluginStatus(name=name, distribution=distribution or name, version=version, status="loaded")
    manager = pluggy.PluginManager("ganreg")
    manager.add_hookspecs(HookSpecs)
    before = {c.qualified + "/" + c.kind for c in registry.components()}
    try:
        manager.register(plugin, name=name)
        manager.hook.ganreg_register(register=registry.make_register(name, version, distribution or name))
    except Exception as exc:
        registry.remove_plugin(name)
        status.status = "failed"
        status.error = f"{type(exc).__name__}: {exc}"
        registry.plugins[name] = status
        if strict:
            raise
        return status
    status.components = sorted(
        f"{c.kind}:{c.qualified}" for c in registry.components() if c.qualified + "/" + c.kind not in before
    )
    registry.plugins[name] = status
    return status


def load_entry_points(registry: Registry, strict: bool | None = None) -> None:
    """Load every entry point of group ``ganreg``, each guarded."""
    strict = _truthy(os.environ.get(ENV_STRICT)) if strict is None else strict
    blocked = blocked_plugins()
    for ep in sorted(metadata.entry_points(group="ganreg"), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else ep.name
        version = ep.dist.version if ep.dist is not None else "0"
        if ep.name in blocked or dist in blocked:
            registry.plugins[ep.name] = PluginStatus(ep.name, dist, version, "blocked", f"blocked by {ENV_BLOCK}")
            continue
        try:
            module = ep.load()
        except Exception as exc:
            if strict:
                raise
            err = f"{type(exc).__name__}: {exc}"
            last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
            if last:
                err += f" ({last[0].filename}:{last[0].lineno})"
            registry.plugins[ep.name] = PluginStatus(ep.name, dist, version, "failed", err)
            continue
        load_plugin(registry, module, ep.name, version, dist, strict=strict)


_default: Registry | None = None


def get_registry(autoload: bool | None = None) -> Registry:
    """The process-wide registry, with installed plugins loaded on first use
    (unless ``GANREG_NO_PLUGIN_AUTOLOAD`` is set)."""
    global _default
    if _default is None:
        _default = Registry()
        if autoload is None:
            autoload = not _truthy(os.environ.get(ENV_NO_AUTOLOAD))
        if autoload:
            load_entry_points(_default)
    return _default


def reset_registry() -> None:
    """Forget the process-wide registry (tests)."""
    global _default
    _default = None
