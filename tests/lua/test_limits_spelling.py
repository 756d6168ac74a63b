"""An entry's `limits:` accept SPEC's spelling (max_memory, max_instructions) and the short one."""

import pytest

from wippy_agents.errors import ConfigError
from wippy_agents.lua import Limits


def test_spec_spelling_of_limits_is_accepted():
    limits = Limits.from_entry_value({"max_memory": "16MiB", "max_instructions": 1000, "timeout": "2s"})
    assert (limits.max_memory, limits.max_instructions, limits.timeout) == (16 * 1024 * 1024, 1000, 2.0)


def test_short_spelling_of_limits_is_accepted():
    limits = Limits.from_entry_value({"memory": 1 << 20, "instructions": 5})
    assert (limits.max_memory, limits.max_instructions) == (1 << 20, 5)


def test_both_spellings_of_one_limit_is_an_error():
    with pytest.raises(ConfigError, match="not both"):
        Limits.from_entry_value({"memory": 1, "max_memory": 2})


async def test_a_function_entry_with_max_instructions_is_stopped_by_it(tmp_path):
    from wippy_agents.app import App

    (tmp_path / "src").mkdir()
    (tmp_path / "wippy.yaml").write_text("sources: [src]\n")
    (tmp_path / "src" / "f.yaml").write_text(
        "namespace: t\nentries:\n  - name: spin\n    kind: function.lua\n"
        "    limits: {max_instructions: 100000}\n"
        "    source: 'return {handler = function() while true do end end}'\n")
    app = await App.open(tmp_path)
    try:
        from wippy_agents.errors import LuaLimitExceeded

        with pytest.raises(LuaLimitExceeded):
            await app.call("t:spin", {})
    finally:
        await app.close()
