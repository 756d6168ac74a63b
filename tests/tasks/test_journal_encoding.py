"""A step's result is encoded once: the journal's text is exactly what the store would write."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy_agents.store.base import StepRecord
from wippy_agents.store.codec import dumps, step_params
from wippy_agents.tasks.journal import encode_json, to_json_data

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_keys = st.text() | st.integers() | st.booleans()
_data = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@given(_data)
def test_the_encoded_text_is_what_the_store_would_write_for_the_round_tripped_value(value):
    data, text = encode_json(value, what="step 'x'")
    assert data == to_json_data(value, what="step 'x'")
    if text is not None:
        # The row reads back as exactly the value the step returned; the text is the codec's
        # own unless keys collided ({"1": a, 1: b} encodes both, and decoding keeps the last).
        assert json.loads(text) == data
        assert dumps(json.loads(text), what="x") == dumps(data, what="x")
        step = StepRecord(task_id="t", seq=1, name="x", status="ok", result=data)
        params = step_params(StepRecord(**{**vars(step), "result_json": text}))
        assert json.loads(params[4]) == json.loads(step_params(step)[4]) == data


def test_scalars_carry_no_text_and_containers_come_back_as_fresh_json_data():
    assert encode_json("a", what="w") == ("a", None)
    assert encode_json(1.5, what="w") == (1.5, None)
    original = {"k": (1, 2), 3: [None]}
    data, text = encode_json(original, what="w")
    assert data == {"k": [1, 2], "3": [None]} and text == '{"k":[1,2],"3":[null]}'
    data["k"].append(9)  # the caller's copy is its own: the journal keeps what was returned
    assert original["k"] == (1, 2)


@pytest.mark.parametrize("bad", [{"x": math.nan}, [math.inf], {"s": {1, 2}}, math.nan])
def test_data_json_cannot_hold_fails_naming_the_step(bad):
    with pytest.raises((TypeError, ValueError), match="step 'x'"):
        encode_json(bad, what="step 'x'")
