"""The composition root: a layer that fails at App.open undoes what earlier layers started."""

import pytest

from wippy_agents import app as app_module
from wippy_agents.app import App


async def test_a_layer_failing_at_open_closes_the_layers_already_opened(tmp_path, monkeypatch):
    (tmp_path / "wippy.yaml").write_text("sources: []\n")
    opened = {}

    def explode(layers):
        opened.update(tasks=layers.tasks, processes=layers.processes, store=layers.store)
        raise RuntimeError("layer failed to open")

    monkeypatch.setattr(app_module, "install_agents", explode)
    with pytest.raises(RuntimeError, match="layer failed to open"):
        await App.open(tmp_path)
    assert opened["processes"]._closing  # the Lua processes layer was closed
    with pytest.raises(Exception, match="closed"):
        await opened["tasks"].start("agent", "x:y", {})  # the task engine was closed


async def test_every_layer_is_a_typed_attribute_of_the_app(tmp_path):
    (tmp_path / "wippy.yaml").write_text("sources: []\n")
    async with await App.open(tmp_path) as app:
        for name, kind in App.__annotations__.items():
            assert getattr(app, name) is not None, name
        assert app.lua.services.guard is not None
        assert not hasattr(app, "extensions")
