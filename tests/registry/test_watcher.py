"""Hot reload: saved files become changesets; a bad save changes nothing and says where."""

from __future__ import annotations

import os

import pytest

from wippy_agents.errors import LoadError, ValidationError
from wippy_agents.registry import AppSettings, Registry

from .conftest import Recorder, eventually, write


@pytest.fixture
async def live(app):
    """A registry (memory history) watching the app, with a recorder and an error list."""
    reg = Registry(author_default="test")
    await reg.load(AppSettings.load(app))
    rec, errors = Recorder(), []
    reg.subscribe(rec)
    watcher = reg.watch(on_error=errors.append)
    try:
        yield reg, rec, errors, watcher
    finally:
        await reg.close()


async def test_saving_a_lua_file_updates_its_entry(live, app):
    reg, rec, errors, _ = live
    (app / "tools" / "weather.lua").write_text("return { handler = function() return 'sunny' end }\n")
    version, changed = await rec.wait_for(lambda v, ids: "app.tools:weather" in ids)
    assert "sunny" in reg.get("app.tools:weather").data["source"] and reg.version == version
    [record] = await reg.history(limit=1)
    assert record.author == "watcher" and errors == []


async def test_saving_a_yaml_file_creates_updates_and_deletes_its_entries(live, app):
    reg, rec, errors, _ = live
    write(
        app / "prompts" / "p.yaml",
        """\
        namespace: app.prompts
        entries:
          - {name: one, kind: prompt, text: "first"}
          - {name: two, kind: prompt, text: "second"}
        """,
    )
    await rec.wait_for(lambda v, ids: "app.prompts:two" in ids)
    mark = rec.mark()
    write(
        app / "prompts" / "p.yaml",
        """\
        namespace: app.prompts
        entries:
          - {name: one, kind: prompt, text: "first, edited"}
        """,
    )
    await rec.wait_for(lambda v, ids: sorted(ids) == ["app.prompts:one", "app.prompts:two"], start=mark)
    assert reg.get("app.prompts:two") is None and reg.get("app.prompts:one").data["text"] == "first, edited"
    mark = rec.mark()
    os.remove(app / "prompts" / "p.yaml")
    await rec.wait_for(lambda v, ids: ids == ["app.prompts:one"], start=mark)
    assert reg.get("app.prompts:one") is None and errors == []


async def test_an_atomic_save_through_a_temp_file_is_one_change(live, app):
    reg, rec, errors, _ = live
    target = app / "agents" / "assistant.yaml"
    text = target.read_text().replace("tools: [app.tools:*]", "tools: []")
    tmp = app / "agents" / ".assistant.yaml.swp"
    tmp.write_text(text)
    os.replace(tmp, target)
    await rec.wait_for(lambda v, ids: ids == ["app.agents:assistant"])
    assert reg.get("app.agents:assistant").data["tools"] == [] and errors == []


@pytest.mark.parametrize(
    "text, error, fragment, line",
    [
        ("namespace: app.tools\nentries:\n  - name: weather\n    kind: [oops\n", LoadError, "malformed YAML", None),
        (
            "namespace: app.tools\nentries:\n  - name: weather\n    kind: function.lua\n    method: handler\n",
            ValidationError,
            "app.tools:weather: function.lua schema: 'source' is a required property",
            3,
        ),
        (
            "namespace: app.tools\nentries:\n  - name: weather\n    kind: function.lua\n    source: file://gone.lua\n",
            LoadError,
            "app.tools:weather: source: file",
            5,
        ),
    ],
    ids=["yaml", "schema", "missing-source"],
)
async def test_a_bad_save_changes_nothing_and_names_file_line_entry(live, app, text, error, fragment, line):
    reg, rec, errors, _ = live
    version, before = reg.version, reg.get("app.tools:weather")
    path = app / "tools" / "weather.yaml"
    path.write_text(text)
    await eventually(lambda: errors)
    [exc] = errors
    assert isinstance(exc, error) and fragment in str(exc)
    assert str(exc).startswith(f"{path}:" + (f"{line}:" if line else ""))
    assert reg.version == version and reg.get("app.tools:weather") is before and rec.events == []
    # fixing the file applies
    from .conftest import TOOL_YAML

    path.write_text(TOOL_YAML.replace("Current weather", "Weather"))
    await rec.wait_for(lambda v, ids: ids == ["app.tools:weather"])
    assert reg.get("app.tools:weather").meta["description"] == "Weather for a city"


async def test_a_missing_source_that_appears_later_is_picked_up(live, app):
    reg, rec, errors, _ = live
    write(app / "tools" / "late.yaml", "namespace: app.tools\nentries:\n  - {name: late, kind: library.lua, source: file://late.lua}\n")
    await eventually(lambda: errors)
    (app / "tools" / "late.lua").write_text("return {}\n")
    await rec.wait_for(lambda v, ids: ids == ["app.tools:late"])
    assert reg.get("app.tools:late").data["source"] == "return {}\n"


async def test_a_save_that_breaks_a_reference_is_refused(live, app):
    reg, rec, errors, _ = live
    path = app / "agents" / "assistant.yaml"
    path.write_text(path.read_text().replace("name: default", "name: renamed"))
    await eventually(lambda: errors)
    assert "app.agents:assistant: model: refers to 'app.models:default', which" in str(errors[0])
    assert reg.get("app.models:default") is not None and reg.get("app.models:renamed") is None


async def test_a_saved_file_replaces_a_runtime_override(live, app):
    reg, rec, errors, _ = live
    cs = reg.changeset(author="agent:x")
    cs.update("app.prompts:assistant", {"text": "changed by an agent"})
    await reg.apply(cs)
    assert reg.get("app.prompts:assistant").origin == "runtime"
    path = app / "agents" / "assistant.yaml"
    path.write_text(path.read_text().replace("You are helpful.", "You are kind."))
    await rec.wait_for(lambda v, ids: "app.prompts:assistant" in ids and v > 2)
    entry = reg.get("app.prompts:assistant")
    assert entry.origin == "file" and entry.data["text"] == "You are kind."
    assert await reg.store.runtime_entries() == []


async def test_single_file_app_is_watched(tmp_path):
    app_file = write(tmp_path / "app.yaml", "namespace: app.db\nentries:\n  - {name: main, kind: registry.entry, host: a}\n")
    reg = Registry()
    await reg.load(AppSettings.load(app_file))
    rec = Recorder()
    reg.subscribe(rec)
    reg.watch()
    try:
        write(tmp_path / ".wippy" / "state.db", "noise")  # the store's folder is not an app change
        app_file.write_text("namespace: app.db\nentries:\n  - {name: main, kind: registry.entry, host: b}\n")
        await rec.wait_for(lambda v, ids: ids == ["app.db:main"])
        assert reg.get("app.db:main").data["host"] == "b"
    finally:
        await reg.close()


async def test_saving_a_file_keeps_runtime_overrides_of_entries_not_edited(live, app):
    reg, rec, errors, _ = live
    cs = reg.changeset(author="agent:x")
    cs.update("app.prompts:assistant", {"text": "changed by an agent"})
    await reg.apply(cs)
    mark = rec.mark()
    path = app / "agents" / "assistant.yaml"
    path.write_text(path.read_text().replace("tools: [app.tools:*]", "tools: []"))
    await rec.wait_for(lambda v, ids: ids == ["app.agents:assistant"], start=mark)
    assert reg.get("app.prompts:assistant").data["text"] == "changed by an agent"
    assert errors == []
