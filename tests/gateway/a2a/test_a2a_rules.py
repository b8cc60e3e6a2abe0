"""The A2A gateway's rules without a server: keys, the skill a message targets,
the origin kept in a task's key, the card's skills (gateway/a2a)."""

import pytest
from a2a.types import InvalidParamsError, Message, Part, Role
from google.protobuf import json_format, struct_pb2

from natsfleet.gateway import ApiKeys, GatewayError
from natsfleet.gateway.a2a import Origin, build_card, target_of
from natsfleet.gateway.a2a.card import CardSettings
from natsfleet.gateway.a2a.mapping import check_client_id
from natsfleet.protocols import AgentInfo, SkillSpec


def msg(*parts: Part, **metadata: object) -> Message:
    message = Message(message_id="m1", role=Role.ROLE_USER, parts=list(parts))
    if metadata:
        message.metadata.update(metadata)
    return message


def data(value: object) -> Part:
    proto = struct_pb2.Value()
    json_format.ParseDict(value, proto)
    return Part(data=proto)


def test_keys_are_named_long_enough_and_required() -> None:
    # The A2A gateway reads its keys with the one rule set of gateway/keys.py.
    keys = ApiKeys.parse("# ops\n\nalice=0123456789abcdef\n bob = fedcba9876543210 \n", "t")
    assert (keys.caller("0123456789abcdef"), keys.caller("fedcba9876543210")) == ("alice", "bob")
    for bad in ("alice", "alice=short", "a b=0123456789abcdef", "x=0123456789 abcdef"):
        with pytest.raises(GatewayError):
            ApiKeys.parse(bad, "t")


def test_a_gateway_without_a_key_refuses_to_start() -> None:
    from click.testing import CliRunner

    from natsfleet.cli.main import cli

    result = CliRunner().invoke(
        cli, ["gateway", "a2a", "--port", "0"], env={"NATSFLEET_GATEWAY_KEYS": ""}
    )
    assert result.exit_code == 2
    assert "no API key" in result.output


def test_the_skill_a_message_targets() -> None:
    # 1. metadata names it; the input is the data part, else the text.
    assert target_of(msg(data({"chunks": 3.0}), skill="stream"), None).input == {"chunks": 3}
    assert target_of(msg(Part(text="hi"), skill="echo"), None).input == {"text": "hi"}
    flow = target_of(msg(data({"x": 1}), workflow="gate"), None)
    assert (flow.skill, flow.workflow, flow.input) == (None, "gate", {"x": 1})
    # 2. a data part names it.
    named = target_of(msg(data({"skill": "echo", "input": {"text": "a"}})), None)
    assert (named.skill, named.input) == ("echo", {"text": "a"})
    # 3. the default skill takes the rest; without one, a clear refusal.
    assert target_of(msg(Part(text="hi")), "echo").skill == "echo"
    with pytest.raises(InvalidParamsError, match="name a skill"):
        target_of(msg(Part(text="hi")), None)
    with pytest.raises(InvalidParamsError, match="raw part"):
        target_of(msg(Part(raw=b"\x00"), skill="echo"), None)
    with pytest.raises(InvalidParamsError, match="must be a name"):
        target_of(msg(Part(text="hi"), skill=3), None)


def test_client_ids_and_the_origin_kept_in_the_key() -> None:
    origin = Origin(caller="alice", context_id='c"1:', message_id="m/1")
    assert Origin.from_key(origin.key()) == origin
    assert Origin.from_key("some other key") is None
    assert Origin.from_key('["a2a", 1, 2]') is None
    for bad in ("", "x" * 201, "a\nb"):
        with pytest.raises(InvalidParamsError):
            check_client_id(bad, "messageId")


def test_the_card_lists_live_skills_with_their_schemas() -> None:
    spec = SkillSpec(name="echo", version="2", input_schema={"type": "object"})
    live = AgentInfo(
        instance_id="i1", agent="echo", incarnation="x", skills=(spec,), capacity=1,
        load=0, last_seen_ms=0,
    )  # fmt: skip
    gone = AgentInfo(
        instance_id="i2", agent="old", incarnation="y", skills=(SkillSpec(name="gone"),),
        capacity=1, load=0, last_seen_ms=0, alive=False,
    )  # fmt: skip
    card = build_card(CardSettings(name="f", description="d", url="http://h/"), (live, gone))
    assert [s.id for s in card.skills] == ["echo"]
    assert list(card.skills[0].tags) == ["echo"]
    [schemas] = card.capabilities.extensions
    params = json_format.MessageToDict(schemas.params)
    assert params["echo"]["input_schema"] == {"type": "object"}
    assert params["echo"]["version"] == "2"
