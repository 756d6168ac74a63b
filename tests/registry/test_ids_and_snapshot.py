"""EntryId parsing, Entry values, Snapshot get/find."""

from __future__ import annotations

import json

import pytest

from wippy_agents.errors import ValidationError
from wippy_agents.registry import Entry, EntryId, Snapshot
from wippy_agents.registry.ids import resolve_ref


def test_full_id_parses_into_dotted_namespace_and_name():
    eid = EntryId("app.tools:weather")
    assert (eid.namespace, eid.name) == ("app.tools", "weather")
    assert eid == "app.tools:weather" and json.dumps(eid) == '"app.tools:weather"'


def test_bare_name_resolves_in_the_referring_namespace():
    assert EntryId.parse("weather", namespace="app.tools") == "app.tools:weather"
    assert resolve_ref("app.other:x", namespace="app.tools") == "app.other:x"
    assert resolve_ref("*", namespace="app.tools") == "app.tools:*"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("weather", "a bare name needs a namespace"),
        ("app..tools:x", "namespace 'app..tools'"),
        ("app.tools:", "name ''"),
        ("app.tools:we ather", "name 'we ather'"),
        ("1app:x", "namespace '1app'"),
        ("", "expected a string"),
    ],
)
def test_bad_ids_are_refused_with_the_reason(text, fragment):
    with pytest.raises(ValidationError) as err:
        EntryId.parse(text)
    assert fragment in str(err.value)


def test_entry_is_frozen_and_to_dict_copies():
    entry = Entry(id=EntryId("app.db:main"), kind="registry.entry", data={"host": "db", "ports": [1]})
    with pytest.raises(AttributeError):
        entry.kind = "x"  # type: ignore[misc]
    d = entry.to_dict()
    d["data"]["ports"].append(2)
    assert entry.data["ports"] == [1]
    assert Entry.from_record(entry.to_record()) == entry


def _snap() -> Snapshot:
    def e(i, kind, **meta):
        return Entry(id=EntryId(i), kind=kind, meta=meta, data={"method": "handler"})

    return Snapshot(
        3,
        {
            x.id: x
            for x in [
                e("app.tools:weather", "function.lua", type="tool"),
                e("app.tools:clock", "function.lua", type="tool"),
                e("app.tools.sub:helper", "function.lua", type="helper"),
                e("app.db:main", "registry.entry"),
            ]
        },
    )


def test_get_is_a_lookup_by_string_or_entry_id():
    snap = _snap()
    assert snap.get("app.db:main").kind == "registry.entry"
    assert snap.get(EntryId("app.db:main")) is snap.get("app.db:main")
    assert snap.get("app.db:missing") is None


def test_find_by_kind_namespace_meta_and_glob():
    snap = _snap()
    assert [str(e.id) for e in snap.find(kind="function.lua", meta={"type": "tool"})] == ["app.tools:clock", "app.tools:weather"]
    assert [str(e.id) for e in snap.find({"kind": "function.lua", "meta.type": "tool"})] == ["app.tools:clock", "app.tools:weather"]
    assert [str(e.id) for e in snap.find(namespace="app.tools")] == ["app.tools.sub:helper", "app.tools:clock", "app.tools:weather"]
    assert [str(e.id) for e in snap.find(pattern="app.tools:*")] == ["app.tools:clock", "app.tools:weather"]
    assert [str(e.id) for e in snap.find({"data.method": "handler", "namespace": "app.db"})] == ["app.db:main"]
    assert snap.find(kind="agent") == []


def test_find_refuses_an_unknown_criterion():
    with pytest.raises(ValidationError, match="unknown find criterion 'type'"):
        _snap().find({"type": "tool"})


def test_snapshot_cannot_be_changed():
    snap = _snap()
    with pytest.raises(AttributeError):
        snap.version = 9
    view = snap.as_mapping()
    with pytest.raises(TypeError):
        view["x"] = None  # type: ignore[index]
