from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hitl_desktop.agent import (
    Proposal,
    RowChange,
    proposal_json_schema,
    proposal_response_format,
)

WIRE = {
    "summary": "Refund $20 on invoice 1042",
    "rationale": "The customer asked for a partial refund.",
    "changes": [
        {
            "op": "insert",
            "table": "refunds",
            "key": [],
            "values": [
                {"column": "invoice_id", "value": 1042},
                {"column": "amount", "value": "20.00"},
                {"column": "note", "value": None},
                {"column": "flag", "value": True},
                {"column": "ratio", "value": 0.5},
            ],
        },
        {"op": "delete", "table": "refunds", "key": [{"column": "id", "value": 7}], "values": []},
    ],
}


def test_wire_pairs_become_dicts() -> None:
    proposal = Proposal.model_validate_json(json.dumps(WIRE))
    first, second = proposal.changes
    assert first.key == {}
    assert first.values == {
        "invoice_id": 1042,
        "amount": "20.00",
        "note": None,
        "flag": True,
        "ratio": 0.5,
    }
    assert second.key == {"id": 7} and second.values == {}
    assert proposal.tables == ("refunds",)
    assert proposal.to_wire() == WIRE


def test_scalar_types_are_kept_exactly() -> None:
    change = RowChange.model_validate(
        {"op": "update", "table": "t", "key": {"id": 1}, "values": {"a": "1", "b": 1, "c": True}}
    )
    assert type(change.values["a"]) is str
    assert type(change.values["b"]) is int
    assert type(change.values["c"]) is bool


def test_dict_form_is_accepted_and_defaults_are_empty() -> None:
    change = RowChange(op="delete", table="t", key={"id": 1})
    assert change.values == {}
    assert RowChange.model_validate(change.to_wire()) == change


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"op": "upsert", "table": "t"}, "literal_error"),
        ({"op": "insert"}, "missing"),
        ({"op": "insert", "table": "t", "where": "1=1"}, "extra_forbidden"),
        (
            {"op": "insert", "table": "t", "values": [{"column": "a", "value": 1}] * 2},
            "value_error",
        ),
        ({"op": "insert", "table": "t", "values": [{"column": "a"}]}, "missing"),
        ({"op": "insert", "table": "t", "values": [{"column": "a", "value": [1]}]}, "string_type"),
        ({"op": "insert", "table": "t", "values": {"a": {"nested": 1}}}, "string_type"),
        ({"op": "insert", "table": "t", "values": {"a": math.nan}}, "finite_number"),
    ],
)
def test_malformed_changes_are_refused(change: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as info:
        Proposal.model_validate({"summary": "s", "rationale": "r", "changes": [change]})
    assert any(error in e["type"] for e in info.value.errors()), info.value.errors()


def test_every_shape_error_is_reported_at_once() -> None:
    bad = {"summary": 1, "changes": [{"op": "x", "table": "t"}, {"op": "insert"}]}
    with pytest.raises(ValidationError) as info:
        Proposal.model_validate(bad)
    locations = {e["loc"] for e in info.value.errors()}
    assert ("summary",) in locations and ("rationale",) in locations
    assert ("changes", 0, "op") in locations and ("changes", 1, "table") in locations


def test_proposals_are_frozen() -> None:
    proposal = Proposal.model_validate(WIRE)
    with pytest.raises(ValidationError):
        proposal.summary = "changed"


# ---- The schema for strict structured outputs -------------------------------------------------

UNSUPPORTED = {
    "default",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "allOf",
    "oneOf",
    "not",
    "if",
}


def _walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    found.extend(_walk(sub))
            else:
                found.extend(_walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_walk(item))
    return found


def test_schema_is_strict_mode_compatible() -> None:
    schema = proposal_json_schema()
    assert schema["type"] == "object" and "anyOf" not in schema
    objects = [n for n in _walk(schema) if n.get("type") == "object"]
    assert len(objects) == 3  # the proposal, a row change, a column/value pair
    for node in objects:
        assert node["additionalProperties"] is False
        assert node["required"] == list(node["properties"])
    for node in _walk(schema):
        assert not UNSUPPORTED & set(node), node
        if "$ref" in node:
            assert node["$ref"].removeprefix("#/$defs/") in schema["$defs"]
    assert set(schema["$defs"]) == {"RowChange", "ColumnValue"}
    value = schema["$defs"]["ColumnValue"]["properties"]["value"]
    assert [t["type"] for t in value["anyOf"]] == ["string", "integer", "number", "boolean", "null"]


def test_schema_is_a_fresh_copy_and_response_format_wraps_it() -> None:
    schema = proposal_json_schema()
    schema["properties"].clear()
    assert proposal_json_schema()["properties"]
    fmt = proposal_response_format()
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == proposal_json_schema()


def _conforms(instance: Any, node: dict[str, Any], root: dict[str, Any]) -> bool:
    """A JSON-schema check of the keywords the proposal schema uses."""
    if "$ref" in node:
        return _conforms(instance, root["$defs"][node["$ref"].rsplit("/", 1)[1]], root)
    if "anyOf" in node:
        return any(_conforms(instance, sub, root) for sub in node["anyOf"])
    if "enum" in node and instance not in node["enum"]:
        return False
    kind = node.get("type")
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if kind is not None and not checks[kind](instance):
        return False
    if kind == "array":
        return all(_conforms(item, node["items"], root) for item in instance)
    if kind == "object":
        props = node["properties"]
        if set(instance) != set(props):  # all required, nothing additional
            return False
        return all(_conforms(instance[k], props[k], root) for k in props)
    return True


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
names = st.text(min_size=1, max_size=12)
row_changes = st.builds(
    RowChange,
    op=st.sampled_from(["insert", "update", "delete"]),
    table=names,
    key=st.dictionaries(names, scalars, max_size=3),
    values=st.dictionaries(names, scalars, max_size=5),
)
part_names = st.none() | st.sampled_from(["Refund $20 on invoice 1042", "Void invoice 7"])
proposals = st.builds(
    lambda summary, rationale, changes, parts: Proposal(
        summary=summary,
        rationale=rationale,
        changes=[
            c if parts is None else c.model_copy(update={"part": parts[i % len(parts)]})
            for i, c in enumerate(changes)
        ],
    ),
    summary=st.text(max_size=50),
    rationale=st.text(max_size=50),
    changes=st.lists(row_changes, max_size=5),
    parts=st.none() | st.lists(part_names.filter(bool), min_size=1, max_size=2),
)


def _model_answer(wire: dict[str, Any]) -> dict[str, Any]:
    """*wire* as a model answers in strict mode: every change gives its part, null for none
    (the stored form leaves a null part out)."""
    changes = [{**change, "part": change.get("part")} for change in wire["changes"]]
    return {**wire, "changes": changes}


@settings(max_examples=150, deadline=None)
@given(proposals)
def test_every_proposal_round_trips_through_the_schema(proposal: Proposal) -> None:
    schema = proposal_json_schema()
    wire = _model_answer(json.loads(json.dumps(proposal.to_wire())))
    assert _conforms(wire, schema, schema)
    assert Proposal.model_validate_json(json.dumps(wire)) == proposal
    assert Proposal.model_validate(proposal.to_wire()) == proposal


def test_a_change_set_names_a_part_for_every_change_or_for_none() -> None:
    insert = {"op": "insert", "table": "t", "values": {"a": 1}}
    mixed = {"summary": "s", "rationale": "r", "changes": [{**insert, "part": " A  b "}, insert]}
    with pytest.raises(ValidationError, match="change 0 names part 'A b' but change 1 names none"):
        Proposal.model_validate(mixed)
    both = {**mixed, "changes": [{**insert, "part": "A"}, {**insert, "part": "B"}, insert]}
    with pytest.raises(ValidationError, match="every change names its part"):
        Proposal.model_validate(both)
    named = Proposal.model_validate({**mixed, "changes": [{**insert, "part": "A"}] * 2})
    assert named.parts == ("A",) and named.to_wire()["changes"][0]["part"] == "A"
    with pytest.raises(ValidationError, match="a part's name is empty"):
        Proposal.model_validate({**mixed, "changes": [{**insert, "part": "  "}]})


def test_the_schema_check_can_fail() -> None:
    schema = proposal_json_schema()
    wire = Proposal.model_validate(WIRE).to_wire()
    assert not _conforms(wire, schema, schema)  # the model must say "part": null
    wire = _model_answer(Proposal.model_validate(WIRE).to_wire())
    assert _conforms(wire, schema, schema)
    wire["changes"][0]["extra"] = 1
    assert not _conforms(wire, schema, schema)
    wire = _model_answer(Proposal.model_validate(WIRE).to_wire())
    del wire["changes"][1]["values"]
    assert not _conforms(wire, schema, schema)
    wire = _model_answer(Proposal.model_validate(WIRE).to_wire())
    wire["changes"][0]["values"][0]["value"] = {"nested": 1}
    assert not _conforms(wire, schema, schema)
