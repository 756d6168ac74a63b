"""compile_check: the registry's Lua validator."""

from __future__ import annotations

import pytest

from wippy_agents.errors import LuaCompileError
from wippy_agents.lua import compile_check


def test_valid_source_compiles_without_running():
    # would loop forever if it ran
    compile_check("while true do end return {}", "app/ok.lua")


def test_syntax_error_names_chunk_and_line():
    with pytest.raises(LuaCompileError) as info:
        compile_check("local a = 1\nlocal b = = 2\n", "app/tools/bad.lua")
    assert str(info.value).startswith("app/tools/bad.lua:2:")
    assert info.value.details["line"] == 2
    assert info.value.details["chunk"] == "app/tools/bad.lua"


def test_binary_chunk_is_refused():
    with pytest.raises(LuaCompileError, match="binary"):
        compile_check(b"\x1bLua\x54\x00junk", "app/bin.lua")


def test_error_survives_a_dict_round_trip():
    from wippy_agents.errors import error_from_dict

    with pytest.raises(LuaCompileError) as info:
        compile_check("return +", "x.lua")
    again = error_from_dict(info.value.to_dict())
    assert isinstance(again, LuaCompileError) and again.details["line"] == 1
