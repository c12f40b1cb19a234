"""Reading tool calls out of text, checking arguments, and scoring (worked by hand)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("agentgym_tools")

from agentgym_tools.calls import (  # noqa: E402
    SchemaError,
    Tool,
    ToolCall,
    parse_reply,
    signature,
    tools_prompt,
    validate_arguments,
)
from agentgym_tools.scoring import (  # noqa: E402
    ExpectedCall,
    MadeCall,
    answer_correct,
    args_score,
    check_weights,
    name_score,
    score,
    values_equal,
)

ADD = Tool(
    "add",
    "Return a + b.",
    {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)
UNIT = Tool(
    "convert",
    "Convert.",
    {
        "type": "object",
        "properties": {
            "value": {"type": "number"},
            "unit": {"type": "string", "enum": ["m", "km"]},
            "tags": {"type": "array", "items": {"type": "integer"}},
            "exact": {"type": "boolean"},
        },
        "required": ["value", "unit"],
    },
)


def call(text: str) -> str:
    return f"<tool_call>{text}</tool_call>"


def test_parse_several_calls_and_answer():
    text = (
        "thinking\n"
        + call('{"name": "add", "arguments": {"a": 1, "b": 2}}')
        + call('{"name": "add", "arguments": "{\\"a\\": 3, \\"b\\": 4}"}')
        + "<answer> 3 </answer>"
    )
    p = parse_reply(text, max_calls=8)
    assert p.calls == [ToolCall("add", {"a": 1, "b": 2}), ToolCall("add", {"a": 3, "b": 4})]
    assert p.errors == [] and p.answer == "3" and p.n_blocks == 2 and p.well_formed


@pytest.mark.parametrize(
    "text, fragment",
    [
        (call("{not json"), "not valid JSON"),
        (call("[1, 2]"), "expected a JSON object"),
        (call('{"arguments": {}}'), "missing 'name'"),
        (call('{"name": "add", "arguments": [1]}'), "must be a JSON object, got list"),
        (call('{"name": "add", "arguments": "{oops"}'), "string that is not valid JSON"),
        ('<tool_call>{"name": "add", "arguments": {}}', "was not closed"),
        (call("[" * 100_000), "not valid JSON"),
    ],
)
def test_malformed_calls_become_messages(text, fragment):
    p = parse_reply(text, max_calls=8)
    assert p.calls == [] and not p.well_formed
    assert any(fragment in e for e in p.errors), p.errors


def test_too_many_calls_runs_none():
    text = call('{"name": "add", "arguments": {"a": 1, "b": 2}}') * 10_000
    p = parse_reply(text, max_calls=16)
    assert p.calls == [] and p.n_blocks == 10_000
    assert p.errors == ["too many tool calls in one reply (10000); at most 16 are allowed, none was run"]


def test_unclosed_answer_tags_are_read_in_linear_time():
    p = parse_reply("<answer>" * 200_000 + "x", max_calls=4)
    assert p.answer is None
    assert parse_reply("<answer>1</answer><answer> 2 </answer>", max_calls=4).answer == "2"


def test_plain_text_has_no_calls_and_is_not_well_formed():
    p = parse_reply("The answer is 7.", max_calls=4)
    assert (p.calls, p.errors, p.answer, p.well_formed) == ([], [], None, False)


@pytest.mark.parametrize(
    "args, problems",
    [
        ({"a": 1, "b": 2.5}, []),
        ({"a": 1}, ["missing required argument 'b'"]),
        ({"a": "1", "b": 2}, ["argument 'a' must be of type number, got string"]),
        ({"a": True, "b": 2}, ["argument 'a' must be of type number, got boolean"]),
        ({"a": 1, "b": 2, "c": 3}, ["unknown argument 'c' (arguments: 'a', 'b')"]),
    ],
)
def test_validate_arguments(args, problems):
    assert validate_arguments(ADD, args) == problems


def test_validate_enum_arrays_booleans():
    assert validate_arguments(UNIT, {"value": 3, "unit": "km", "tags": [1, 2], "exact": False}) == []
    assert validate_arguments(UNIT, {"value": 3, "unit": "mi"}) == [
        'argument \'unit\' must be one of "m", "km", got "mi"'
    ]
    assert validate_arguments(UNIT, {"value": 3, "unit": "m", "tags": [1, "x"]}) == [
        "argument 'tags' item 1 must be of type integer, got string"
    ]
    assert validate_arguments(UNIT, {"value": float("nan"), "unit": "m"}) == [
        "argument 'value' must be of type number, got float"
    ]


def test_bad_schemas_are_refused():
    with pytest.raises(SchemaError, match="type 'object'"):
        Tool("t", "", {"type": "string"})
    with pytest.raises(SchemaError, match="unknown type 'float'"):
        Tool("t", "", {"type": "object", "properties": {"x": {"type": "float"}}})
    with pytest.raises(SchemaError, match="'required' must list names"):
        Tool("t", "", {"type": "object", "properties": {}, "required": ["x"]})
    with pytest.raises(SchemaError, match="must not be an empty list"):
        Tool("t", "", {"type": "object", "properties": {"x": {"type": []}}})
    with pytest.raises(SchemaError, match="non-empty string 'name'"):
        Tool.from_schema({"type": "function", "function": {"description": "no name"}})


def test_openai_schema_round_trip_and_prompts():
    assert Tool.from_schema(ADD.schema()) == ADD
    full = tools_prompt([ADD, UNIT], "Do it.", example=True, listing="json")
    assert json.dumps(ADD.schema()) in full and "<tools>" in full
    assert (
        'For example (placeholder values): <tool_call>{"name": "add", "arguments": {"a": 2.5, "b": 2.5}}</tool_call>'
        in full
    )
    compact = tools_prompt([ADD, UNIT], "Do it.", listing="compact")
    assert "- add(a: number, b: number): Return a + b." in compact and "For example" not in compact
    assert (
        signature(UNIT)
        == "convert(value: number, unit: one of m|km, tags: array (optional), exact: boolean (optional)): Convert."
    )
    with pytest.raises(ValueError, match="listing must be one of"):
        tools_prompt([ADD], "x", listing="xml")


# ----- scoring, by hand -------------------------------------------------------------------


def made(name: str, result=None, **args) -> MadeCall:
    return MadeCall(ToolCall(name, args), result)


def test_name_score_is_multiset_jaccard():
    exp = [ExpectedCall("add", {}), ExpectedCall("add", {}), ExpectedCall("divide", {})]
    # called add once, divide once, weather once: |G∩P| = 2, |G∪P| = 4
    assert name_score([made("add"), made("divide"), made("weather")], exp) == pytest.approx(2 / 4)
    assert name_score([], []) == 1.0
    assert name_score([made("add")], []) == 0.0
    # repeating a call costs: add x3 vs add x2 + divide: ∩ = 2, ∪ = 4
    assert name_score([made("add")] * 3, exp) == pytest.approx(2 / 4)


def test_args_score_by_hand_and_order_insensitive():
    exp = [
        ExpectedCall("add", {"a": [1], "b": [2]}),
        ExpectedCall("add", {"a": [5], "b": [7, 7.0]}),
    ]
    calls = [made("add", a=5, b=7.0), made("add", a=1, b=3)]
    # first expected: best is (1, 3): a ok, b wrong -> 1/2; second: (5, 7.0) -> 1
    assert args_score(calls, exp) == pytest.approx((0.5 + 1.0) / 2)
    assert args_score(list(reversed(calls)), exp) == pytest.approx(0.75)
    # an extra argument counts in the union: {a, b, c} with a, b right -> 2/3
    assert args_score([made("add", a=1, b=2, c=0)], exp[:1]) == pytest.approx(2 / 3)
    # None in the list: the argument may be left out
    assert args_score([made("add", a=1)], [ExpectedCall("add", {"a": [1], "b": [None, 2]})]) == 1.0
    # a missing call scores 0 for that expectation
    assert args_score([], exp) == 0.0


def test_matcher_values_see_the_result():
    exp = [ExpectedCall("run_python", {"code": [lambda code, result: result.strip() == "42"]})]
    assert args_score([made("run_python", result="42\n", code="print(6*7)")], exp) == 1.0
    assert args_score([made("run_python", result="41\n", code="print(41)")], exp) == 0.0
    boom = [ExpectedCall("f", {"x": [lambda v, r: 1 / 0]})]
    assert args_score([made("f", x=1)], boom) == 0.0  # a failing matcher is a mismatch


def test_values_equal():
    assert values_equal(3, 3.0) and values_equal("3.0", 3) and values_equal(" Oslo ", "oslo")
    assert values_equal(1.00001, 1.0) and not values_equal(1.01, 1.0)
    assert not values_equal(True, 1) and not values_equal(1, True)
    assert values_equal([1, "a"], [1.0, "A"]) and not values_equal([1], [1, 2])
    assert values_equal({"x": 1}, {"x": 1.0}) and not values_equal({"x": 1, "y": 2}, {"x": 1})


@pytest.mark.parametrize(
    "text, expected, ok",
    [
        ("281.5", [281.5], True),
        ("The result is 281.50 s", [281.5], True),
        ("12, 952", [12, 952], True),
        ("1,234", [1234], True),
        ("3.2e-05", [0.000032], True),
        ("-250.6, 952", [-250.6, 952], True),
        ("952, -250.6", [-250.6, 952], False),
        ("12.346", [12.34], False),
        ("12.344", [12.34], True),
        ("5,120", [5, 120], True),
        ("5, 120", [5, 120], True),
        ("Tuesday", ["Tuesday"], True),
        ("Monday or Tuesday", ["Tuesday"], False),
        ("The company is based in Gelvekville.", ["Gelvekville"], False),
        ("it is a tuesday.", ["Tuesday"], True),
        ("Monday Tuesday Wednesday Thursday Friday Saturday Sunday " * 3, ["Tuesday"], False),
        ("Gelvekville, 66", ["Gelvekville", 66], True),
        ("Gelvekville, 812,000", ["Gelvekville", 812000], True),
        ("66, Gelvekville", ["Gelvekville", 66], False),
        ("2026-10-26", ["2026-10-26"], True),
        ("2026-10-27", ["2026-10-26"], False),
        (None, [1], False),
        ("", [1], False),
    ],
)
def test_answer_correct(text, expected, ok):
    assert answer_correct(text, expected) is ok


def test_score_weights_and_errors():
    exp = [ExpectedCall("add", {"a": [1], "b": [2]})]
    parts = score([made("add", a=1, b=2)], exp, [1.0, 0.5], True, check_weights({"answer": 2.0}))
    assert parts == {"format": pytest.approx(0.1 * 0.75), "name": 0.2, "args": 0.2, "answer": 2.0}
    with pytest.raises(ValueError, match="unknown reward weight 'speed'"):
        check_weights({"speed": 1})
    with pytest.raises(ValueError, match="finite number"):
        check_weights({"name": float("inf")})
