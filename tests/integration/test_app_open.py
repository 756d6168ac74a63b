"""A failing layer hook at App.open undoes what earlier hooks started and leaves nothing running."""

import pytest

from wippy_agents import app as app_module
from wippy_agents.app import App


async def test_a_failing_open_hook_closes_the_layers_already_attached(tmp_path, monkeypatch):
    (tmp_path / "wippy.yaml").write_text("sources: []\n")
    closed = []

    async def attach(app):
        app.add_closer(lambda: _note(closed, "earlier layer"))

    async def explode(app):
        raise RuntimeError("layer failed to attach")

    monkeypatch.setattr(app_module, "_OPEN_HOOKS", [*app_module._OPEN_HOOKS, attach, explode])
    with pytest.raises(RuntimeError, match="layer failed to attach"):
        await App.open(tmp_path)
    assert closed == ["earlier layer"]


async def _note(into, what):
    into.append(what)
