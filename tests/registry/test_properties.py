"""Properties: any sequence of changesets can be rolled back to any version, and a
refused changeset leaves everything as it was."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy_agents.errors import ValidationError
from wippy_agents.registry import EntryId, Registry

NAMES = st.sampled_from(["a", "b", "c", "d"])
OPS = st.lists(
    st.tuples(st.sampled_from(["create", "update", "delete"]), NAMES, st.integers(0, 3)), min_size=1, max_size=4
)


def _content(reg: Registry) -> dict[str, tuple]:
    return {str(e.id): (e.kind, e.data.get("value"), e.data.get("ref")) for e in reg.snapshot()}


async def _scenario(batches: list[list[tuple[str, str, int]]], target_pick: int) -> None:
    reg = Registry()
    states = {0: {}}
    for batch in batches:
        cs = reg.changeset()
        for op, name, value in batch:
            eid = EntryId.of("app.p", name)
            if op == "create":
                # every other entry refers to "a": deleting "a" while referenced must be refused
                spec = {"id": eid, "kind": "test.ref" if value % 2 and name != "a" else "registry.entry", "value": value}
                if spec["kind"] == "test.ref":
                    spec["ref"] = "a"
                cs.create(spec)
            elif op == "update":
                cs.update(eid, {"value": value})
            else:
                cs.delete(eid)
        before_version, before = reg.version, _content(reg)
        try:
            await reg.apply(cs)
        except ValidationError:
            assert reg.version == before_version and _content(reg) == before
            continue
        states[reg.version] = _content(reg)
    if reg.version == 0:
        return
    target = 1 + target_pick % reg.version
    await reg.rollback(target)
    assert _content(reg) == states[target]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=6), st.integers(0, 100))
def test_rollback_to_any_version_restores_exactly_that_state(batches, target_pick):
    from wippy_agents.registry import kinds
    from wippy_agents.registry.kinds import KindHandler, RefField

    class TestRef(KindHandler):
        kind = "test.ref"
        schema_file = "registry.entry.json"
        refs = (RefField(path="ref"),)

    kinds.register(TestRef(), replace=True)
    try:
        asyncio.run(_scenario(batches, target_pick))
    finally:
        kinds.unregister("test.ref")
