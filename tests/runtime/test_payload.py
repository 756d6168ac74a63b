"""Payloads are copied as data; anything else is refused at send time with its path."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from wippy_agents.errors import InvalidPayload
from wippy_agents.runtime import Down, Exit, copy_payload


@dataclasses.dataclass(frozen=True, kw_only=True)
class Point:
    x: int
    tags: list


@dataclasses.dataclass
class Mutable:
    x: int


def test_json_like_data_is_deep_copied():
    data = {"a": [1, {"b": (2, 3)}], "c": b"raw", "d": None, "e": 1.5, "f": True}
    copy = copy_payload(data)
    assert copy == data
    assert copy is not data and copy["a"] is not data["a"] and copy["a"][1] is not data["a"][1]


def test_immutable_scalars_are_shared():
    s = "x" * 100
    assert copy_payload(s) is s


def test_frozen_dataclass_with_mutable_field_is_rebuilt():
    p = Point(x=1, tags=["a"])
    c = copy_payload(p)
    assert c == p and c is not p and c.tags is not p.tags


def test_exit_and_down_are_shared_as_is():
    e = Exit(pid="<t.1>", reason=RuntimeError("x"))
    d = Down(ref="#Ref<t.1>", pid="<t.2>", reason="normal")
    assert copy_payload(e) is e and copy_payload(d) is d


def test_a_socket_is_refused_with_its_type_and_path():
    with socket.socket() as s:
        with pytest.raises(InvalidPayload, match=r"cannot send socket.socket at payload\['conn'\]\[1\]"):
            copy_payload({"conn": [1, s]})


def test_a_lambda_is_refused_naming_it():
    with pytest.raises(InvalidPayload, match=r"function \(a lambda\) at payload\[0\]"):
        copy_payload([lambda: 1])


@pytest.mark.parametrize("value, what", [({1, 2}, "set"), (object(), "object"), (Mutable(x=1), "frozen")])
def test_non_data_values_are_refused(value, what):
    with pytest.raises(InvalidPayload, match=what):
        copy_payload({"v": value})


def test_non_scalar_dict_keys_are_refused():
    with pytest.raises(InvalidPayload, match="dict keys"):
        copy_payload({(1, 2): "x"})


def test_cyclic_data_is_refused():
    a: list = []
    a.append(a)
    with pytest.raises(InvalidPayload, match="refers to itself"):
        copy_payload(a)


def test_invalid_payload_error_survives_a_dict_round_trip():
    from wippy_agents.errors import error_from_dict

    with pytest.raises(InvalidPayload) as info:
        copy_payload({"f": print})
    again = error_from_dict(info.value.to_dict())
    assert isinstance(again, InvalidPayload) and str(again) == str(info.value)
