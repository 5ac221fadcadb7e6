"""Test-suite set-up: no plugin autoloading (tests load what they need), a
private cache directory, and a registry fixture with every installed plugin."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GANREG_NO_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path_factory.getbasetemp() / "ganreg-cache"
    monkeypatch.setenv("GANREG_CACHE", str(cache))


@pytest.fixture
def installed_registry(monkeypatch: pytest.MonkeyPatch):
    """The process-wide registry with every installed plugin, as the CLI sees it."""
    from ganreg import plugins

    plugins.reset_registry()
    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    reg = plugins.get_registry()
    yield reg
    plugins.reset_registry()
