"""The gateway's pure parts: API keys, the credential header, tool schemas, the tool list."""

import msgspec
import pytest

from natsfleet.gateway import ApiKeys, GatewayError
from natsfleet.gateway.auth import presented_key
from natsfleet.gateway.catalog import build
from natsfleet.gateway.schemas import tool_input_schema
from natsfleet.protocols import AgentInfo, SkillSpec, WorkflowInfo
from tests.fleet_agents import Text

KEYS = ApiKeys.parse("alice=aaaaaaaaaaaaaaaa1, bob=bbbbbbbbbbbbbbbb2 # comment\n", "test")


def test_a_key_names_its_caller_and_nothing_else_does() -> None:
    assert KEYS.caller("aaaaaaaaaaaaaaaa1") == "alice"
    assert KEYS.caller("bbbbbbbbbbbbbbbb2") == "bob"
    for wrong in ("", "aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa1 ", "x" * 10_000):
        assert KEYS.caller(wrong) is None


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(GatewayError, match="given twice"):
        ApiKeys.parse("a=0123456789abcdef0\na=0123456789abcdef1", "f")


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "headers": list(headers)}


def test_the_credential_comes_from_a_bearer_token_or_x_api_key() -> None:
    assert presented_key(_scope((b"authorization", b"Bearer abc"))) == "abc"
    assert presented_key(_scope((b"authorization", b"bearer abc "))) == "abc"
    assert presented_key(_scope((b"x-api-key", b"k1"))) == "k1"
    assert presented_key(_scope((b"authorization", b"Basic abc"))) == ""
    assert presented_key(_scope((b"authorization", b"Bearer " + b"x" * 5000))) == ""
    assert presented_key(_scope()) == ""


def test_a_struct_schema_is_lifted_and_a_scalar_input_is_wrapped() -> None:
    lifted, wrapped = tool_input_schema(msgspec.json.schema(Text))
    assert not wrapped
    assert lifted["type"] == "object" and lifted["required"] == ["text"]
    scalar, wrapped = tool_input_schema({"type": "string"})
    assert wrapped
    assert scalar["properties"]["input"] == {"type": "string"}
    anything, wrapped = tool_input_schema({})
    assert anything == {"type": "object"} and not wrapped


def _instance(
    iid: str, *skills: SkillSpec, alive: bool = True, draining: bool = False
) -> AgentInfo:
    return AgentInfo(
        instance_id=iid,
        agent="a",
        incarnation="x",
        skills=skills,
        capacity=1,
        load=0,
        last_seen_ms=0,
        alive=alive,
        draining=draining,
    )


def test_the_tool_list_holds_live_skills_and_workflows_only() -> None:
    good = SkillSpec(name="echo", input_schema=msgspec.json.schema(Text))
    broken = SkillSpec(name="broken", input_schema={"type": 12})  # not a JSON Schema
    hostile = SkillSpec(name="hostile", input_schema={"$schema": {"x": 1}, "type": "object"})
    bad_regex = SkillSpec(
        name="regex", input_schema={"type": "object", "properties": {"a": {"pattern": "("}}}
    )
    tools = build(
        (
            _instance("i1", good, broken, hostile, bad_regex),
            _instance("i2", SkillSpec(name="other")),
            _instance("i0", SkillSpec(name="leaving"), draining=True),
            _instance("i3", SkillSpec(name="dead"), alive=False),
        ),
        (WorkflowInfo(name="flow", required_input=("q",)),),
    )
    # Unusable schemas (not a schema, a `$schema` that is no string, a bad
    # regex) leave their skill out instead of failing the list.
    assert sorted(tools) == ["echo", "other", "workflow.flow"]
    assert tools["echo"].errors({"text": 1}) == ["text: 1 is not of type 'string'"]
    assert tools["workflow.flow"].errors({}) == ["(arguments): 'q' is a required property"]
