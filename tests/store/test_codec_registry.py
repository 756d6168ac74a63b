"""The registry write's encoding: each entry encoded once, the same JSON as
encoding the whole record would give, whatever the strings hold."""

from __future__ import annotations

import itertools
import json

import pytest

from wippy_agents.errors import InvalidPayload
from wippy_agents.store.base import AuditRecord, VersionRecord
from wippy_agents.store.codec import append_args, audit_rows

ODD = 'quote " backslash \\ newline \n nul \x00 é \u2028 😀'


def _entry(i: int, text: str = "x") -> dict:
    return {"id": f"app.t:e{i}", "kind": "registry.entry", "meta": {"d": text}, "data": {"v": i, "s": text},
            "file": None, "line": None, "origin": "runtime"}


def test_changes_json_is_the_records_json_and_current_rows_reuse_each_entry():
    changes = [
        {"op": "create", "id": "app.t:e1", "entry": _entry(1, ODD), "before": None},
        {"op": "update", "id": ODD, "entry": _entry(2), "before": _entry(2, ODD)},
        {"op": "delete", "id": "app.t:e3", "entry": None, "before": _entry(3)},
        {"op": "create", "id": "app.t:e4", "entry": _entry(4), "before": None, "extra": [1, 2]},  # not the usual shape
        {"note": "no entry key"},
    ]
    record = VersionRecord(version=7, created_at=1.0, author="a", reason="r", changes=changes)
    row, ups, dels, audits, (cur_ups, cur_dels) = append_args(record, [], [], [])
    assert json.loads(row[4]) == changes
    assert [(k, json.loads(e), v) for k, e, v in cur_ups] == [
        ("app.t:e1", _entry(1, ODD), 7), (ODD, _entry(2), 7), ("app.t:e4", _entry(4), 7)]
    assert cur_dels == [("app.t:e3",)]


def test_non_json_data_is_refused_before_any_write():
    record = VersionRecord(version=1, created_at=1.0, author="a", reason="r",
                           changes=[{"op": "create", "id": "x:y", "entry": {"data": {1, 2}}, "before": None}])
    with pytest.raises(InvalidPayload, match="registry version 1 changes"):
        append_args(record, [], [], [])


def test_audit_details_shared_by_records_are_encoded_once_and_stay_apart_otherwise():
    shared = {"version": 1, "op": "create", "reason": "r"}
    records = [AuditRecord(at=1.0, actor="a", action="registry.write", resource=f"x:{i}", decision="allow", details=shared)
               for i in range(3)]
    # records made on the fly (their details freed as we go) keep their own details
    fresh = (AuditRecord(at=1.0, actor="a", action="registry.write", resource=f"y:{i}", decision="allow",
                         details={"version": i, "op": "update"}) for i in range(50))
    rows = audit_rows(itertools.chain(records, fresh))
    assert [json.loads(r[5]) for r in rows[:3]] == [shared] * 3
    assert [json.loads(r[5])["version"] for r in rows[3:]] == list(range(50))


def test_current_rows_decode_in_one_parse_and_a_bad_row_is_named():
    from wippy_agents.errors import StoreError
    from wippy_agents.store.codec import entries_from_rows

    good = [{"id": f"app.t:e{i}", "entry": json.dumps(_entry(i))} for i in range(3)]
    assert entries_from_rows(good) == [_entry(i) for i in range(3)]
    assert entries_from_rows([]) == []
    for bad, why in (('{"id": "app.t:e1"', "not valid JSON"), ("[1]", "not an object"),
                     ('{"id": "app.t:e1"}, {"id": "x"}', "not valid JSON")):
        rows = [good[0], {"id": "app.t:e1", "entry": bad}, good[2]]
        with pytest.raises(StoreError, match=rf"cannot decode registry_current row 'app.t:e1': .*{why}"):
            entries_from_rows(rows)
    # rows whose texts only line up when joined are still decoded one by one (and refused)
    split = [{"id": "a:x", "entry": '{"id": "a:x"}, {"id": "a:y"'}, {"id": "a:y", "entry": "}"}]
    with pytest.raises(StoreError, match="row 'a:x'"):
        entries_from_rows(split)
    # an entry whose id is not its row's is decoded one by one, as entry_from_row always did
    assert entries_from_rows([{"id": "a:x", "entry": '{"id": "a:y"}'}]) == [{"id": "a:y"}]
