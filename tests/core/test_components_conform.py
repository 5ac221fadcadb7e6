"""Every registered component, built with its tiny params, honours its kind's
contract. Parametrised over the registry: a new component is tested automatically."""

from __future__ import annotations

import pytest

from ganreg.plugins import load_entry_points
from ganreg.registry import Registry
from ganreg.testing import check_component


def _all_components() -> list:
    reg = Registry()
    load_entry_points(reg, strict=False)
    return reg.components()


@pytest.mark.parametrize("info", _all_components(), ids=lambda c: f"{c.kind}:{c.qualified}")
def test_component_honours_its_contract(info) -> None:  # type: ignore[no-untyped-def]
    check_component(info)


def test_every_bundled_plugin_contributes() -> None:
    plugins = {c.plugin for c in _all_components()}
    assert {"core", "dcgan_cls", "dfgan"} <= plugins
