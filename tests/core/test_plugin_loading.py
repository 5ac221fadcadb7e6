"""Loading third-party plugins as their authors get them wrong: clashing entry-point names, a forgotten
``@hookimpl``, errors inside a plugin (located in the plugin's own file), broken factory paths, and the
conformance kit. Plugins here are real distributions (a dist-info and modules) in a temporary site."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import types
from importlib import metadata
from pathlib import Path

import pytest

from ganreg import plugins
from ganreg.errors import ComponentError
from ganreg.plugins import hookimpl, load_entry_points, load_plugin
from ganreg.registry import Registry

PLUGIN = '''\
from ganreg.plugins import hookimpl

@hookimpl
def ganreg_register(register):
    register("generator", "{component}", "{factory}", summary="a generator")
'''


class FakeSite:
    """Distributions written into a temporary directory on ``sys.path``; ``entry_points`` lists theirs only."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.dists: list[metadata.Distribution] = []
        self.packages: set[str] = set()
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setattr(plugins.metadata, "entry_points", self.entry_points)

    def add(self, dist: str, entry_points: dict[str, str], files: dict[str, str] | None = None) -> None:
        info = self.root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text("[ganreg]\n" + lines)
        for rel, text in (files or {}).items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
            self.packages.add(Path(rel).parts[0].removesuffix(".py"))
        self.dists.append(metadata.PathDistribution(info))

    def entry_points(self, group: str) -> list[metadata.EntryPoint]:
        return [ep for d in self.dists for ep in d.entry_points if ep.group == group]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GANREG_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("GANREG_STRICT_PLUGINS", raising=False)
    (tmp_path / "site").mkdir()
    fake = FakeSite(tmp_path / "site", monkeypatch)
    yield fake
    for name in [m for m in sys.modules if m.partition(".")[0] in fake.packages]:
        del sys.modules[name]


def two_distributions_defining_dupe(site: FakeSite) -> None:
    for dist, package in (("ganreg-breakme", "breakme_pkg"), ("ganreg-other", "other_pkg")):
        plugin = PLUGIN.format(component="g", factory=f"{package}.plugin:x")
        site.add(dist, {"dupe": f"{package}.plugin"}, {f"{package}/__init__.py": "", f"{package}/plugin.py": plugin})


# ------------------------------------------------------------ 1. one entry-point name, two distributions
def test_an_entry_point_name_two_distributions_define_loads_from_neither(site: FakeSite) -> None:
    two_distributions_defining_dupe(site)
    site.add("ganreg-single", {"single": "single_pkg"}, {"single_pkg.py": PLUGIN.format(component="s", factory="single_pkg:x")})
    site.dists.append(site.dists[-1])  # the same distribution seen twice on sys.path is one
    reg = Registry()
    load_entry_points(reg)
    assert "dupe" not in reg.plugins, "no silent winner"
    for dist, other in (("ganreg-breakme", "ganreg-other"), ("ganreg-other", "ganreg-breakme")):
        row = reg.plugins[f"dupe ({dist})"]
        assert row.status == "failed" and row.distribution == dist and row.name == f"dupe ({dist})"
        assert "2 distributions define the ganreg entry point 'dupe'" in row.error and dist in row.error and other in row.error
        assert f"GANREG_BLOCK_PLUGINS={dist} loads only {other}'s" in row.error
    assert reg.plugins["single"].status == "loaded"
    assert [c.qualified for c in reg.components()] == ["single:s"]
    with pytest.raises(ComponentError, match="2 distributions define"):
        load_entry_points(Registry(), strict=True)


def test_blocking_all_but_one_clashing_distribution_loads_the_other(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    two_distributions_defining_dupe(site)
    monkeypatch.setenv("GANREG_BLOCK_PLUGINS", "ganreg_other")  # distribution names compare as pip does
    reg = Registry()
    load_entry_points(reg)
    assert reg.plugins["dupe"].status == "loaded" and reg.plugins["dupe"].distribution == "ganreg-breakme"
    assert reg.plugins["dupe (ganreg-other)"].status == "blocked"
    assert reg.resolve("generator", "dupe:g").distribution == "ganreg-breakme"


def test_cli_lists_both_clashing_distributions(tmp_path: Path) -> None:
    """The user's case: a third party's ``dfgan`` entry point beside the bundled ``ganreg-dfgan``."""
    site = tmp_path / "site"
    info = site / "ganreg_breakme-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ganreg-breakme\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ganreg]\ndfgan = ganreg_breakme.dupe\n")
    (site / "ganreg_breakme").mkdir()
    (site / "ganreg_breakme" / "__init__.py").write_text("")
    (site / "ganreg_breakme" / "dupe.py").write_text(PLUGIN.format(component="dfgan", factory="ganreg_breakme.dupe:x"))

    def plugins_json(**env: str) -> dict[str, dict]:
        full = {k: v for k, v in os.environ.items() if k != "GANREG_NO_PLUGIN_AUTOLOAD"}
        full.update(PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), **env)
        cmd = [sys.executable, "-m", "ganreg.cli", "plugins", "--json"]
        res = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=120)
        assert res.returncode == 0, res.stderr
        return {p["name"]: p for p in json.loads(res.stdout)}

    rows = plugins_json()
    assert "dfgan" not in rows
    assert rows["dfgan (ganreg-breakme)"]["status"] == rows["dfgan (ganreg-dfgan)"]["status"] == "failed"
    assert "duplicate" not in rows["dfgan (ganreg-dfgan)"]["error"]
    rows = plugins_json(GANREG_BLOCK_PLUGINS="ganreg-breakme")
    assert rows["dfgan"]["status"] == "loaded" and rows["dfgan"]["distribution"] == "ganreg-dfgan"
    assert rows["dfgan (ganreg-breakme)"]["status"] == "blocked"


# ---------------------------------------------------------------- 2. a plugin that registers nothing
def test_a_plugin_without_hookimpl_fails() -> None:
    def ganreg_register(register):  # type: ignore[no-untyped-def]  # the decorator is forgotten
        register("generator", "g", "x:y", summary="s")

    status = load_plugin(Registry(), types.SimpleNamespace(ganreg_register=ganreg_register), "forgot")
    assert status.status == "failed"
    assert "registered nothing" in status.error and "not marked with @hookimpl" in status.error
    assert "fix: mark `def ganreg_register(register)` with `@hookimpl`" in status.error
    with pytest.raises(ComponentError, match="registered nothing"):
        load_plugin(Registry(), types.SimpleNamespace(ganreg_register=ganreg_register), "forgot", strict=True)


def test_a_misspelt_hook_is_named() -> None:
    @hookimpl
    def ganreg_regster(register):  # type: ignore[no-untyped-def]
        register("generator", "g", "x:y", summary="s")

    status = load_plugin(Registry(), types.SimpleNamespace(ganreg_regster=ganreg_regster), "typo")
    assert status.status == "failed" and "unknown hook(s) 'ganreg_regster'" in status.error
    assert "registered nothing" in load_plugin(Registry(), types.SimpleNamespace(), "empty").error


# ------------------------------------------------------ 3. where in the plugin's own code an error is
def test_hook_and_import_errors_name_the_plugins_file_and_line(site: FakeSite) -> None:
    site.add("ganreg-hookfail", {"hookfail": "hookfail_pkg.plugin"}, {
        "hookfail_pkg/__init__.py": "",
        "hookfail_pkg/plugin.py": """\
            from ganreg.plugins import hookimpl

            @hookimpl
            def ganreg_register(register):
                raise ValueError("bad width")
            """,
    })
    site.add("ganreg-importfail", {"importfail": "importfail_pkg.plugin"}, {
        "importfail_pkg/__init__.py": "",
        "importfail_pkg/plugin.py": "import os\nimport missing_dependency_of_importfail\n",
    })
    site.add("ganreg-gone", {"gone": "gone_pkg.plugin"})
    reg = Registry()
    load_entry_points(reg)
    hook = reg.plugins["hookfail"].error
    assert hook.startswith("ValueError: bad width") and hook.endswith(f"({site.root / 'hookfail_pkg' / 'plugin.py'}:5)")
    imp = reg.plugins["importfail"].error
    assert "missing_dependency_of_importfail" in imp and imp.endswith(f"({site.root / 'importfail_pkg' / 'plugin.py'}:2)")
    gone = reg.plugins["gone"].error
    assert "entry point 'gone = gone_pkg.plugin' of distribution 'ganreg-gone' names module 'gone_pkg.plugin'" in gone
    assert "fix: reinstall 'ganreg-gone'" in gone


def test_a_registration_error_names_the_register_call() -> None:
    @hookimpl
    def ganreg_register(register):  # type: ignore[no-untyped-def]
        register("vocoder", "v", "x:y", summary="s")

    line = ganreg_register.__code__.co_firstlineno + 2
    status = load_plugin(Registry(), types.SimpleNamespace(ganreg_register=ganreg_register), "bad")
    assert f"unknown kind 'vocoder' ({__file__}:{line})" in status.error


# ------------------------------------------------------------------ 5. broken 'module:function' paths
def test_factory_path_errors_tell_a_typo_from_a_missing_dependency(site: FakeSite) -> None:
    site.add("ganreg-paths", {"paths": "paths_pkg.plugin"}, {
        "paths_pkg/__init__.py": "",
        "paths_pkg/needs.py": "import os\nimport missing_dependency_of_paths\ndef build(params, ctx): ...\n",
        "paths_pkg/plugin.py": """\
            from ganreg.plugins import hookimpl

            @hookimpl
            def ganreg_register(register):
                register("generator", "typo", "paths_pkg.genrator:build", summary="s")
                register("generator", "attr", "paths_pkg.plugin:biuld", summary="s")
                register("generator", "dep", "paths_pkg.needs:build", summary="s")
            """,
    })
    reg = Registry()
    load_entry_points(reg)
    assert reg.plugins["paths"].status == "loaded"
    with pytest.raises(ComponentError) as typo:
        reg.resolve("generator", "paths:typo").factory
    assert "names module 'paths_pkg.genrator', which does not exist" in typo.value.message
    assert typo.value.fix == "correct the 'module:function' path given to register() in plugin 'paths'"
    with pytest.raises(ComponentError) as dep:
        reg.resolve("generator", "paths:dep").factory
    assert f"({site.root / 'paths_pkg' / 'needs.py'}:2)" in dep.value.message
    assert dep.value.fix == "install 'missing_dependency_of_paths', which it needs, or reinstall the distribution 'ganreg-paths'"
    with pytest.raises(ComponentError) as attr:
        reg.resolve("generator", "paths:attr").factory
    assert "names 'biuld', which module 'paths_pkg.plugin' does not define" in attr.value.message
    assert attr.value.fix == typo.value.fix

    from ganreg.testing import registry_with  # no distribution: the fix names the plugin, not a distribution

    alone = registry_with(sys.modules["paths_pkg.plugin"], "alone")
    with pytest.raises(ComponentError) as dep:
        alone.resolve("generator", "alone:dep").factory
    assert dep.value.fix.endswith("reinstall the plugin 'alone'")


# ------------------------------------------------------------------------------ 7. the conformance kit
@pytest.mark.parametrize(("declared", "shown"), [({"network": "gen"}, "'gen'"), ({}, "None")])
def test_the_kit_rejects_a_loss_that_trains_no_known_network(declared: dict, shown: str) -> None:
    """Loss.network has no default: a generator term that forgets it must not pass as a discriminator term."""
    from ganreg.interfaces import Loss
    from ganreg.kinds import BuildContext
    from ganreg.testing import _check_loss

    def forward(self, ctx):  # type: ignore[no-untyped-def]
        return ctx.real.mean()

    misnamed = type("Misnamed", (Loss,), {**declared, "forward": forward})
    with pytest.raises(AssertionError, match=f"Misnamed.network is {shown}: it must be 'generator' or 'discriminator'"):
        _check_loss(misnamed(), BuildContext(image_size=32, cond_dim=8, num_classes=4))


def test_the_kit_names_a_discriminator_that_ignores_the_condition() -> None:
    """Not torch's "appears to not have been used in the graph": the contract's own words."""
    import torch

    from ganreg.kinds import BuildContext
    from ganreg.testing import _check_discriminator, _tiny_networks

    tiny = _tiny_networks()["TinyDiscriminator"]

    def logits(self, features, cond):  # type: ignore[no-untyped-def]
        return self.head(torch.cat([features, torch.zeros_like(cond)], 1)).squeeze(1)

    ctx = BuildContext(image_size=32, cond_dim=8, num_classes=4)
    unconditional = type("Unconditional", (tiny,), {"logits": logits})(ctx)
    with pytest.raises(AssertionError, match="logits must depend on the condition"):
        _check_discriminator(unconditional, ctx)


@pytest.mark.parametrize(
    ("test_params", "message"),
    [({"_imagesize": 32}, "test_params key(s) _imagesize are not the kit's (_image_size)"),
     ({"z_dim": 0}, "mine:g does not build with its test_params {'z_dim': 0}")],
)
def test_the_kit_names_its_own_test_params_as_the_problem(test_params: dict, message: str) -> None:
    """A misspelt kit key was ignored silently; params the factory refuses read as a recipe's mistake."""
    from ganreg.errors import UserError
    from ganreg.registry import ComponentInfo, NoParams
    from ganreg.testing import check_component

    def build(params, ctx):  # type: ignore[no-untyped-def]
        raise UserError("z_dim must be positive", "set z_dim")

    info = ComponentInfo("generator", "g", "mine", build, NoParams, "g", None, "0", "", test_params)
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_component(info)


def test_the_pytest_plugin_does_not_import_torch() -> None:
    """pytest imports ``ganreg.testing`` (entry point pytest11) in every run in the environment."""
    code = (
        "import sys, ganreg.testing as t; print('torch' in sys.modules); "
        "from ganreg.testing import TinyGenerator; print(issubclass(TinyGenerator, __import__('torch').nn.Module))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "True"]
