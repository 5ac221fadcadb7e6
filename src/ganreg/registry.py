"""The component registry: ``(kind, name)`` -> how to build it.

The registry knows nothing of training. Each component is registered by a
plugin with a pydantic params model (defaults, ranges, docs) and is addressed
by its qualified id ``plugin:name``; a bare ``name`` resolves only while it is
unique within its kind, never "last one wins".
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import os
import re
import traceback
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined

from ganreg.errors import ComponentError, RecipeError, UserError
from ganreg.kinds import KINDS, BuildContext

if TYPE_CHECKING:
    from torch import nn

Factory = Callable[[Any, BuildContext], "nn.Module"]
"""A callable, or ``"package.module:function"``: imported only when the
component is built, so that listing and validating never import torch."""

COMPONENT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""What a component name may be: ``:`` separates the plugin in a qualified id, ``*`` and ``?`` are wildcards."""

ENV_STRICT = "GANREG_STRICT_PLUGINS"
"""Re-raise a plugin's own exception (on loading or building) instead of a short message."""


def env_flag(name: str) -> bool:
    """Whether environment switch ``name`` is on (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def strict_plugins() -> bool:
    return env_flag(ENV_STRICT)


def _in_package(module: str, packages: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def plugin_location(exc: BaseException, package: str | None = None) -> str | None:
    """``file:line`` of the plugin code that raised ``exc``: the innermost frame in the plugin's own
    ``package`` when given, else the innermost one outside importlib, pluggy and ganreg, else outside
    ganreg's plugin machinery (ganreg's own built-in plugin); None when there is none."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [(f.f_globals.get("__name__") or "", f.f_code.co_filename, n) for f, n in traceback.walk_tb(exc.__traceback__)]
    machinery = ("importlib", "pluggy", "ganreg.plugins", "ganreg.registry")
    pools = [
        [f for f in frames if package and _in_package(f[0], [package]) and not _in_package(f[0], machinery)],
        [f for f in frames if not _in_package(f[0], ("importlib", "pluggy", "ganreg"))],
        [f for f in frames if not _in_package(f[0], machinery)],
    ]
    for pool in pools:
        if pool:
            return f"{pool[-1][1]}:{pool[-1][2]}"
    return None


class NoParams(BaseModel):
    """Params model of components that take none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ComponentInfo:
    kind: str
    name: str
    plugin: str
    factory_ref: Factory | str
    params: type[BaseModel]
    summary: str
    paper: str | None
    version: str
    distribution: str
    test_params: dict[str, Any]
    """Tiny params for the conformance tests (``ganreg.testing``)."""

    @property
    def qualified(self) -> str:
        return f"{self.plugin}:{self.name}"

    @property
    def owner(self) -> str:
        """Who to blame in a fix: its distribution, or its plugin when it has none (tests)."""
        return f"distribution {self.distribution!r}" if self.distribution else f"plugin {self.plugin!r}"

    @property
    def package(self) -> str | None:
        """The top-level package of the factory (without importing it): where :func:`plugin_location`
        looks first for the frame that raised."""
        ref = self.factory_ref
        module = ref.partition(":")[0] if isinstance(ref, str) else getattr(ref, "__module__", None)
        return module.partition(".")[0] if module else None

    @property
    def factory(self) -> Factory:
        """The factory, imported on first use when registered as ``"module:function"``."""
        ref = self.factory_ref
        if not isinstance(ref, str):
            return ref
        module_name, _, attr = ref.partition(":")
        wrong_path = f"correct the 'module:function' path given to register() in plugin {self.plugin!r}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and _in_package(module_name, [exc.name]):  # the path's own module (or package) is missing
                raise ComponentError(
                    f"{self.kind} {self.qualified}: its factory {ref!r} names module {module_name!r}, which does not exist",
                    wrong_path,
                ) from exc
            raise self._import_error(ref, exc, f"install {exc.name!r}, which it needs, or reinstall the {self.owner}") from exc
        except ImportError as exc:
            raise self._import_error(ref, exc, f"check its dependencies' versions, or reinstall the {self.owner}") from exc
        except Exception as exc:
            raise self._import_error(ref, exc, f"report it to the maintainers of the {self.owner}") from exc
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ComponentError(
                f"{self.kind} {self.qualified}: its factory {ref!r} names {attr!r}, which module {module_name!r} does not define",
                wrong_path,
            ) from None

    def _import_error(self, ref: str, exc: Exception, fix: str) -> ComponentError:
        where = plugin_location(exc, ref.partition(".")[0].partition(":")[0])
        return ComponentError(
            f"{self.kind} {self.qualified}: importing its factory {ref!r} failed: {type(exc).__name__}: {exc}"
            + (f" ({where})" if where else ""),
            fix,
        )

    @property
    def description(self) -> str:
        """The factory's docstring (imports it)."""
        return inspect.getdoc(self.factory) or ""

    def validate_params(self, params: dict[str, Any] | BaseModel | None, where: str = "params") -> BaseModel:
        """Validate raw params against the component's model (errors name the path)."""
        if isinstance(params, self.params):
            return params
        raw = params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
        problems = self.params_problems(raw, where)
        if problems:
            raise RecipeError(problems, source=self.qualified)
        return self.params.model_validate(raw)

    def params_problems(self, raw: dict[str, Any], where: str = "params") -> list[tuple[str, str, str | None]]:
        """Every problem of raw params (path, message, fix): pydantic's, and unknown keys even where the
        plugin's model would ignore them (:func:`unknown_key_problems`)."""
        problems = unknown_key_problems(self.params, raw, where)
        try:
            self.params.model_validate(raw)
        except ValidationError as exc:
            problems += validation_problems(exc, where, self.params)
        return problems

    def build(self, params: dict[str, Any] | BaseModel | None, ctx: BuildContext) -> nn.Module:
        """Validate ``params`` and call the factory. An exception the factory raises (a bug or an
        unsupported setting it did not report as a :class:`UserError`) becomes a :class:`ComponentError`
        naming the component, with the original as ``__cause__`` (re-raised as is under
        ``GANREG_STRICT_PLUGINS=1``)."""
        validated = self.validate_params(params)
        factory = self.factory
        try:
            return factory(validated, ctx)
        except UserError:
            raise
        except Exception as exc:
            if strict_plugins():
                raise
            where = plugin_location(exc, self.package)
            raise ComponentError(
                f"{self.kind} {self.qualified} failed to build: {type(exc).__name__}: {exc}" + (f" ({where})" if where else ""),
                f"check its params (`ganreg show {self.qualified}`), or report it to the maintainers of the {self.owner}",
            ) from exc


def unknown_key_fix(key: str, valid: list[str], elsewhere: list[str] | tuple[str, ...] = ()) -> str:
    """The fix for a key its section does not have: the closest valid key, when one is close, else the
    sections ``elsewhere`` that have it (``train.lr``: ``optim.generator``, ...)."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if elsewhere:
        return f"{key!r} is a key of {', '.join(elsewhere)}: move it there"
    return "remove it or check its spelling"


def unknown_key_problems(model: type[BaseModel], raw: dict[str, Any], where: str) -> list[tuple[str, str, str | None]]:
    """Keys of ``raw`` that ``model`` has no field for, as (path, "unknown key", did-you-mean) problems, for a
    model that did not choose what to do with them: pydantic then ignores them silently, and a misspelt
    recipe key would change nothing. A model that sets ``extra`` itself (``"forbid"``: pydantic reports
    them; ``"allow"``: it wants them) is left to its choice."""
    if "extra" in model.model_config:
        return []
    known: set[str] = set()
    for name, field in model.model_fields.items():
        known.add(name)
        if isinstance(field.alias, str):
            known.add(field.alias)
        if isinstance(field.validation_alias, str):
            known.add(field.validation_alias)
    problems: list[tuple[str, str, str | None]] = []
    for key in raw:
        if key not in known:
            problems.append((f"{where}.{key}", "unknown key", unknown_key_fix(str(key), sorted(known))))
    return problems


def bool_problems(model: type[BaseModel], raw: Any, where: str) -> list[tuple[str, str, str | None]]:
    """``true`` / ``false`` where ``model`` (and the models nested in it) wants a number, as (path, message,
    fix) problems. pydantic reads them as 1 / 0, so ``"ema_decay": false``, meant as "no EMA", trained with
    decay 0, and ``"steps": true`` trained one step; a bound (``max_minutes > 0``) reported the rest in terms
    that did not say what was wrong."""
    problems: list[tuple[str, str, str | None]] = []
    if not isinstance(raw, dict):
        return problems
    fields = {**{f.alias: f for f in model.model_fields.values() if isinstance(f.alias, str)}, **model.model_fields}
    for key, value in raw.items():
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            continue
        path = f"{where}.{key}" if where else key
        scalars = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, item in scalars:
            if isinstance(item, bool) and _wants_number(field.annotation):
                nullable = i is None and type(None) in typing.get_args(field.annotation)  # the field, not an item
                fix = "give a number" + (", or null" if nullable else "")
                if field.description:
                    fix += f": {field.description.strip().rstrip('.')}"
                problems.append((path if i is None else f"{path}.{i}", f"{str(item).lower()} is not a number", fix))
            sub = _model_in(field.annotation)
            if sub is not None:
                problems += bool_problems(sub, item, path if i is None else f"{path}.{i}")
    return problems


def _wants_number(annotation: Any) -> bool:
    """Whether an annotation (``int``, ``float | None``, ``list[float]``, ``Annotated[int, ...]``) takes numbers
    and not booleans."""
    seen: set[Any] = set()

    def leaves(a: Any) -> None:
        args = typing.get_args(a)
        if typing.get_origin(a) is typing.Annotated:
            leaves(args[0])
        elif args:
            for arg in args:
                leaves(arg)
        else:
            seen.add(a)

    leaves(annotation)
    return bool(seen & {int, float}) and bool not in seen and Any not in seen


def without_repeats(problems: list[tuple[str, str, str | None]]) -> list[tuple[str, str, str | None]]:
    """The first problem of each path: a key reported by :func:`bool_problems` or :func:`unknown_key_problems`
    needs no second message from pydantic about the same value."""
    seen: set[str] = set()
    out = []
    for problem in problems:
        if problem[0] not in seen:
            seen.add(problem[0])
            out.append(problem)
    return out


def _default_problems(model: type[BaseModel]) -> list[tuple[str, str]]:
    """(field, problem) for each default of ``model`` that its own type and constraints reject (pydantic
    does not validate defaults unless asked to): ``z_dim: int = Field(0, ge=1)``. Each default is checked
    alone, against its field's annotation and constraints only, so validators that read other fields are
    not run; ``None`` (the "not set" idiom) and factories are not checked."""
    from typing import Annotated

    from pydantic import TypeAdapter

    problems = []
    for name, field in model.model_fields.items():
        if field.default is PydanticUndefined or field.default is None or field.default_factory is not None:
            continue
        try:
            annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            adapter: TypeAdapter[Any] = TypeAdapter(annotation)
            adapter.validate_python(field.default)
        except ValidationError as exc:
            problems.append((name, "; ".join(e["msg"] for e in exc.errors())))
        except Exception:  # an annotation TypeAdapter cannot take on its own: pydantic checks it when used
            continue
    return problems


def validation_problems(
    exc: ValidationError, prefix: str, model: type[BaseModel] | None = None
) -> list[tuple[str, str, str | None]]:
    """Turn pydantic errors into (json path, message, fix) triples; with ``model``, a misspelt key
    gets the closest valid key of its section as the fix."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        path = f"{prefix}.{loc}" if loc else prefix
        fix = None
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            key = str(err["loc"][-1])
            elsewhere = [p for p in _sections_with(model, key) if p != path.rsplit(".", 1)[0]]
            fix = unknown_key_fix(key, _keys_at(model, err["loc"]), elsewhere)
        else:
            msg = err["msg"]
            field = _field_at(model, err["loc"])
            # a section's own check (e.g. data: crop 'bbox' needs source 'folder') says what to change in its
            # message; the section's description ("Where the image-caption pairs come from") is no fix
            whole_section = err["type"] == "value_error" and field is not None and _model_in(field.annotation) is not None
            if field is not None and field.description and not whole_section:
                what = field.description.strip().rstrip(".")
                fix = f"add it ({what})" if err["type"] == "missing" else f"give a value that fits what it is: {what}"
        out.append((path, msg, fix))
    return out


def _section_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model of the section that holds ``loc``'s last key (list indices skipped), or None."""
    keys = [str(part) for part in loc if not isinstance(part, int)]
    current = model
    for key in keys[:-1]:
        field = current.model_fields.get(key) if current is not None else None
        current = _model_in(field.annotation) if field is not None else None
    return current


def _field_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> Any:
    """The pydantic field ``loc`` names, or None."""
    keys = [str(part) for part in loc if not isinstance(part, int)]
    section = _section_at(model, loc)
    return section.model_fields.get(keys[-1]) if section is not None and keys else None


def _sections_with(model: type[BaseModel] | None, key: str, prefix: str = "", depth: int = 3) -> list[str]:
    """The dotted paths of the sections of ``model`` that have a field ``key`` (``lr``: ``optim.generator``,
    ``optim.discriminator``), for a key written in the wrong section."""
    if model is None or depth < 0:
        return []
    found = [prefix] if prefix and key in model.model_fields else []
    for name, field in model.model_fields.items():
        inner = _model_in(field.annotation)
        if inner is not None and inner is not model:
            found += _sections_with(inner, key, f"{prefix}.{name}" if prefix else name, depth - 1)
    return found


def _keys_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The valid keys of the section that holds ``loc``'s last key."""
    section = _section_at(model, loc)
    return list(section.model_fields) if section is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


class Registry:
    """All registered components, plus the plugins that registered them."""

    def __init__(self) -> None:
        self._by_qualified: dict[tuple[str, str], ComponentInfo] = {}
        self.plugins: dict[str, Any] = {}  # name -> PluginStatus (see ganreg.plugins)

    # ------------------------------------------------------------- registration
    def make_register(self, plugin: str, version: str = "0", distribution: str = "") -> Callable[..., None]:
        """The ``register(...)`` callback handed to one plugin's hook."""

        def register(
            kind: str,
            name: str,
            factory: Factory | str,
            params: type[BaseModel] = NoParams,
            summary: str | None = None,
            paper: str | None = None,
            test_params: dict[str, Any] | None = None,
        ) -> None:
            """Register ``factory(params, ctx) -> nn.Module`` as ``plugin:name``.

            ``factory`` may be ``"package.module:function"`` (then give a
            ``summary``): it is imported only when the component is built, so a
            plugin whose params models live in a torch-free module keeps
            ``ganreg list`` fast. ``params``: its pydantic model; its defaults
            must pass their own fields' constraints, and keys it has no field
            for are refused unless it sets ``extra`` itself
            (:func:`unknown_key_problems`). ``test_params``: tiny params the
            conformance kit builds it with.
            """
            if kind not in KINDS:
                raise ComponentError(f"plugin {plugin!r} registers unknown kind {kind!r}", f"use one of {', '.join(KINDS)}")
            if not isinstance(name, str) or not COMPONENT_NAME.fullmatch(name):
                raise ComponentError(
                    f"plugin {plugin!r} registers {kind} name {name!r}: a name is letters, digits, '_', '-' and '.' "
                    "(':' separates the plugin in qualified ids, '*' is a wildcard)",
                    "rename it, e.g. my_generator",
                )
            if not (inspect.isclass(params) and issubclass(params, BaseModel)):
                raise ComponentError(f"{plugin}:{name}: params must be a pydantic model class")
            bad = _default_problems(params)
            if bad:
                fields = ", ".join(f"{params.__name__}.{field}" for field, _ in bad)
                raise ComponentError(
                    f"{kind} {plugin}:{name}: "
                    + "; ".join(f"the default of params field {field!r} breaks its own constraint: {problem}" for field, problem in bad),
                    f"give {fields} a default that passes, or no default (then every recipe must set it)",
                )
            key = (kind, f"{plugin}:{name}")
            if key in self._by_qualified:
                other = self._by_qualified[key]
                raise ComponentError(  # one plugin per entry-point name: the same plugin registered it twice
                    f"plugin {plugin!r} registers {kind} {name!r} twice (the second from {distribution or plugin})",
                    f"register each {kind} name once in {other.distribution or other.plugin}: give the second another name",
                )
            if isinstance(factory, str):
                if ":" not in factory:
                    raise ComponentError(f"{plugin}:{name}: factory {factory!r} must read 'package.module:function'")
                if not summary:
                    raise ComponentError(f"{plugin}:{name}: a factory given by name needs a summary=")
            elif not callable(factory):
                raise ComponentError(f"{plugin}:{name}: factory must be callable or 'package.module:function'")
            self._by_qualified[key] = ComponentInfo(
                kind=kind,
                name=name,
                plugin=plugin,
                factory_ref=factory,
                params=params,
                summary=summary or _first_line(inspect.getdoc(factory)),
                paper=paper,
                version=version,
                distribution=distribution,
                test_params=dict(test_params or {}),
            )

        return register

    def remove_plugin(self, plugin: str) -> None:
        for key in [k for k, v in self._by_qualified.items() if v.plugin == plugin]:
            del self._by_qualified[key]

    # ------------------------------------------------------------------ lookup
    def components(self, kind: str | None = None) -> list[ComponentInfo]:
        items = [c for c in self._by_qualified.values() if kind is None or c.kind == kind]
        return sorted(items, key=lambda c: (KINDS.index(c.kind), c.qualified))

    def match(self, pattern: str = "*") -> list[ComponentInfo]:
        """Components whose ``kind:plugin:name``, ``kind:name``, ``plugin:name``
        or ``name`` matches a shell-style wildcard pattern."""
        out = []
        for c in self.components():
            names = (f"{c.kind}:{c.plugin}:{c.name}", f"{c.kind}:{c.name}", c.qualified, c.name)
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                out.append(c)
        return out

    def resolve(self, kind: str, name: str) -> ComponentInfo:
        """Find a component by qualified id or unique bare name."""
        if kind not in KINDS:
            raise ComponentError(f"unknown component kind {kind!r}", f"use one of {', '.join(KINDS)}")
        candidates = self.components(kind)
        if ":" in name:
            for c in candidates:
                if c.qualified == name:
                    return c
        else:
            found = [c for c in candidates if c.name == name]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                ids = ", ".join(c.qualified for c in found)
                raise ComponentError(f"{kind} name {name!r} is ambiguous: {ids}", f"use one of the qualified ids: {ids}")
        raise ComponentError(f"unknown {kind} {name!r}", self.suggest(kind, name))

    def suggest(self, kind: str | Sequence[str], name: str) -> str:
        """A fix for an unknown name: the plugin it belongs to when that did not load, the closest valid
        names (among the components of ``kind``, one kind or several), or what there is."""
        kinds = [kind] if isinstance(kind, str) else list(kind)
        plugin = name.partition(":")[0] if ":" in name else None
        # a plugin whose entry-point name several distributions define has rows "name (distribution)"
        statuses = [s for key, s in self.plugins.items() if plugin and (key == plugin or key.startswith(f"{plugin} ("))]
        if statuses and not any(s.status == "loaded" for s in statuses):
            status = statuses[0]
            why = (status.error or "").splitlines()[0] if status.error else ""
            return f"its plugin {plugin!r} is {status.status}" + (f" ({why})" if why else "") + ": see `ganreg plugins`"
        candidates = [c for k in kinds for c in self.components(k)]
        pool = sorted({n for c in candidates for n in (c.name, c.qualified)})
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
        guess = "did you mean " + " or ".join(repr(c) for c in dict.fromkeys(close)) + "?" if close else ""
        if plugin and not statuses and not any(c.plugin == plugin for c in self.components()):
            # a typo in the plugin part, or a run whose plugin was uninstalled since: say both
            missing = f"no plugin named {plugin!r} is installed (`ganreg plugins` lists those that are)"
            return f"{missing}; {guess}" if guess else f"{missing}: install the distribution that provides it"
        if guess:
            return guess
        what = kinds[0] if len(kinds) == 1 else "component"
        if not pool:
            return f"no {what} is registered: is a plugin installed? (see `ganreg plugins`)"
        if len(kinds) > 1:
            return "see `ganreg list`"
        return f"registered {what}s: " + ", ".join(sorted({c.qualified for c in candidates}))

    def __contains__(self, item: tuple[str, str]) -> bool:
        try:
            self.resolve(*item)
        except ComponentError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._by_qualified)
