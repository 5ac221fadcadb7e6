"""Registry and plugin loading: qualified ids, ambiguity, clashes, broken plugins."""

from __future__ import annotations

import types

import pytest
from pydantic import BaseModel, ConfigDict, Field

from ganreg.errors import ComponentError, RecipeError, UserError
from ganreg.interfaces import Generator
from ganreg.plugins import PluginStatus, hookimpl, load_entry_points, load_plugin
from ganreg.registry import Registry


class P(BaseModel):
    width: int = Field(8, ge=1)


class G(Generator):
    def __init__(self, params: P, ctx: object) -> None:
        super().__init__()
        self.z_dim = params.width


def make_plugin(*names: str, kind: str = "generator") -> types.SimpleNamespace:
    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        for n in names:
            register(kind, n, G, params=P, summary=f"{n} summary")

    return types.SimpleNamespace(ganreg_register=ganreg_register)


def test_qualified_and_bare_names_resolve() -> None:
    reg = Registry()
    load_plugin(reg, make_plugin("alpha", "beta"), "one", version="1.2")
    assert reg.resolve("generator", "alpha").qualified == "one:alpha"
    assert reg.resolve("generator", "one:beta").version == "1.2"
    assert reg.plugins["one"].components == ["generator:one:alpha", "generator:one:beta"]


def test_ambiguous_bare_name_lists_candidates() -> None:
    reg = Registry()
    load_plugin(reg, make_plugin("alpha"), "one")
    load_plugin(reg, make_plugin("alpha"), "two")
    with pytest.raises(ComponentError) as exc:
        reg.resolve("generator", "alpha")
    assert "ambiguous" in exc.value.message and "one:alpha" in exc.value.message and "two:alpha" in exc.value.message
    assert reg.resolve("generator", "two:alpha").plugin == "two"


def test_a_name_registered_twice_by_one_plugin_is_named_as_its_mistake() -> None:
    reg = Registry()

    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        register("generator", "alpha", G, params=P)
        register("generator", "alpha", G, params=P)

    status = load_plugin(reg, types.SimpleNamespace(ganreg_register=ganreg_register), "dup", distribution="dist-a")
    assert status.status == "failed"
    assert "plugin 'dup' registers generator 'alpha' twice" in status.error and "dist-a" in status.error
    assert "uninstall" not in status.error  # not two plugins: one, to fix
    assert len(reg) == 0, "a failed plugin's registrations are rolled back"


@pytest.mark.parametrize("name", ["p:alpha", "gen*", "two words", ""])
def test_a_name_that_ids_and_wildcards_cannot_address_is_refused(name: str) -> None:
    reg = Registry()

    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        register("generator", name, G, params=P)

    status = load_plugin(reg, types.SimpleNamespace(ganreg_register=ganreg_register), "odd")
    assert status.status == "failed" and f"registers generator name {name!r}" in status.error


def test_unknown_name_suggests_closest() -> None:
    reg = Registry()
    load_plugin(reg, make_plugin("dfgan"), "dfgan")
    with pytest.raises(ComponentError) as exc:
        reg.resolve("generator", "dfgn")
    assert "dfgan" in (exc.value.fix or "")


def test_broken_plugin_is_isolated_and_strict_reraises() -> None:
    reg = Registry()

    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    broken = types.SimpleNamespace(ganreg_register=ganreg_register)
    status = load_plugin(reg, broken, "broken")
    assert status.status == "failed" and "boom" in status.error
    load_plugin(reg, make_plugin("ok"), "good")
    assert reg.resolve("generator", "ok").plugin == "good"
    with pytest.raises(RuntimeError):
        load_plugin(Registry(), broken, "broken", strict=True)


def test_unknown_kind_rejected() -> None:
    status = load_plugin(Registry(), make_plugin("x", kind="vocoder"), "bad")
    assert status.status == "failed" and "unknown kind" in status.error


def test_wildcards() -> None:
    reg = Registry()
    load_plugin(reg, make_plugin("alpha", "beta"), "one")
    load_plugin(reg, make_plugin("gamma", kind="discriminator"), "two")
    assert {c.name for c in reg.match("generator:*")} == {"alpha", "beta"}
    assert {c.name for c in reg.match("*:gamma")} == {"gamma"}
    assert {c.name for c in reg.match("one:*")} == {"alpha", "beta"}


class _EP:
    """A stand-in entry point whose load raises, as a broken package does."""

    name = "exploding"
    dist = None

    def load(self) -> None:
        raise ImportError("No module named 'missing_dependency'")


def test_entry_point_import_failure_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from ganreg import plugins

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [_EP()])
    reg = Registry()
    load_entry_points(reg, strict=False)
    st = reg.plugins["exploding"]
    assert isinstance(st, PluginStatus) and st.status == "failed" and "missing_dependency" in st.error


def test_blocked_plugin_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from ganreg import plugins

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [_EP()])
    monkeypatch.setenv("GANREG_BLOCK_PLUGINS", "exploding")
    reg = Registry()
    load_entry_points(reg)
    assert reg.plugins["exploding"].status == "blocked"


def test_installed_plugins_load(installed_registry: Registry) -> None:
    statuses = installed_registry.plugins
    assert statuses["core"].status == "loaded"
    assert installed_registry.resolve("text_encoder", "lstm").qualified == "core:lstm"
    for expected in ("dcgan_cls", "dfgan"):
        assert statuses[expected].status == "loaded", statuses[expected].error


def test_listing_components_does_not_import_torch() -> None:
    """Factories registered as 'module:function' load only when built, so
    `ganreg list` / `show` / `validate` stay fast."""
    import subprocess
    import sys

    code = (
        "import sys; from ganreg.plugins import get_registry; reg = get_registry(); "
        "assert len(reg.components()) > 10; print('torch' in sys.modules)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "GANREG_NO_PLUGIN_AUTOLOAD"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_factory_by_name_is_imported_when_built() -> None:
    reg = Registry()

    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        register("text_encoder", "lazy", "ganreg.text_encoders.lstm:build_lstm", summary="lazy lstm")
        register("text_encoder", "broken", "ganreg.nowhere:build", summary="missing module")

    load_plugin(reg, types.SimpleNamespace(ganreg_register=ganreg_register), "p", strict=True)
    assert "DAMSM" in reg.resolve("text_encoder", "lazy").description
    with pytest.raises(ComponentError, match="names module 'ganreg.nowhere', which does not exist"):
        reg.resolve("text_encoder", "broken").factory
    bad = load_plugin(Registry(), make_plugin_with_factory("nocolon"), "q")
    assert bad.status == "failed" and "package.module:function" in bad.error


def make_plugin_with_factory(factory: str) -> types.SimpleNamespace:
    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        register("generator", "x", factory, summary="s")

    return types.SimpleNamespace(ganreg_register=ganreg_register)


def register_one(params: type[BaseModel], factory: object = G) -> tuple[Registry, PluginStatus]:
    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        register("generator", "g", factory, params=params, summary="s")

    reg = Registry()
    return reg, load_plugin(reg, types.SimpleNamespace(ganreg_register=ganreg_register), "p", distribution="ganreg-p")


@pytest.mark.parametrize(
    ("default", "needle"),
    [(Field(0, ge=1), "greater than or equal to 1"), (Field("sixteen"), "valid integer")],
    ids=["breaks-its-constraint", "wrong-type"],
)
def test_a_params_default_that_fails_its_own_field_is_refused(default: object, needle: str) -> None:
    Bad = type("Bad", (BaseModel,), {"__annotations__": {"z_dim": int, "width": int}, "z_dim": default})
    reg, status = register_one(Bad)
    assert status.status == "failed" and len(reg) == 0
    assert "generator p:g: the default of params field 'z_dim' breaks its own constraint" in status.error
    assert needle in status.error and "Bad.z_dim" in status.error  # 'width' has no default: not a problem


def test_a_failing_factory_is_a_component_error_with_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GANREG_STRICT_PLUGINS", raising=False)

    def build(params: P, ctx: object) -> G:
        if params.width == 3:
            raise UserError("width 3 is not supported", "use an even width")
        raise ValueError("bad width")

    reg, _ = register_one(P, build)
    info = reg.resolve("generator", "p:g")
    with pytest.raises(ComponentError) as exc:
        info.build({}, None)  # type: ignore[arg-type]
    assert exc.value.message.startswith("generator p:g failed to build: ValueError: bad width")
    assert "`ganreg show p:g`" in exc.value.fix and "'ganreg-p'" in exc.value.fix
    assert isinstance(exc.value.__cause__, ValueError)
    with pytest.raises(UserError, match="width 3 is not supported") as user:
        info.build({"width": 3}, None)  # type: ignore[arg-type]
    assert type(user.value) is UserError
    monkeypatch.setenv("GANREG_STRICT_PLUGINS", "1")
    with pytest.raises(ValueError, match="bad width"):
        info.build({}, None)  # type: ignore[arg-type]


def test_unknown_params_keys_are_refused_unless_the_model_chose_otherwise() -> None:
    """A model that says nothing about extra keys would drop a misspelt one silently: ganreg refuses it.
    The plugin's class is kept as it is (instances pickle); a model that chose "allow" gets its keys."""
    from pydantic import field_validator

    class Loose(BaseModel):
        """Loose params."""

        z_dim: int = Field(8, ge=1, description="Noise size.")

    reg, _ = register_one(Loose)
    info = reg.resolve("generator", "p:g")
    assert info.params is Loose
    assert isinstance(info.validate_params({"z_dim": 4}), Loose)
    assert type(info.validate_params({"z_dim": 4})) is Loose  # not a subclass: instances pickle where the class does
    with pytest.raises(RecipeError) as exc:
        info.validate_params({"z_dimm": 4})
    assert exc.value.problems == [("params.z_dimm", "unknown key", "did you mean 'z_dim'?")]

    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")

    assert register_one(Open)[0].resolve("generator", "p:g").validate_params({"knob": 3}).knob == 3  # type: ignore[attr-defined]

    class CrossField(BaseModel):  # a validator reading another (required) field: fine at registration
        image_size: int
        crop: int = 0
        hidden: int = None  # type: ignore[assignment]  # the "not set" idiom

        @field_validator("crop")
        @classmethod
        def _fits(cls, v: int, info) -> int:  # type: ignore[no-untyped-def]
            assert v < info.data["image_size"]
            return v

    assert register_one(CrossField)[0].resolve("generator", "p:g").validate_params({"image_size": 64, "crop": 8}).crop == 8
