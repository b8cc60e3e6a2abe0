"""Every wire message survives encode -> decode unchanged, alone and in its union."""

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natsfleet.protocols import (
    ALL_MESSAGES,
    AgentAnnouncement,
    AgentInbox,
    AssignReply,
    AttemptOutcome,
    Codec,
    ControlReply,
    ControlRequest,
    TaskOutput,
    encode,
)

from .strategies import struct_strategy

UNIONS: list[Any] = [
    AgentAnnouncement,
    AgentInbox,
    AssignReply,
    AttemptOutcome,
    TaskOutput,
    ControlRequest,
    ControlReply,
]


@pytest.mark.parametrize("message_type", ALL_MESSAGES, ids=lambda t: t.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips(message_type: type[Any], data: st.DataObject) -> None:
    message = data.draw(struct_strategy(message_type))
    assert Codec[Any](message_type).decode(encode(message)) == message


@pytest.mark.parametrize("union", UNIONS, ids=str)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_union_members_decode_to_their_own_type(union: Any, data: st.DataObject) -> None:
    members = [m for m in union.__args__]
    member = data.draw(st.sampled_from(members))
    message = data.draw(struct_strategy(member))
    decoded = Codec[Any](union).decode(encode(message))
    assert type(decoded) is member
    assert decoded == message


def test_every_message_is_frozen_and_tagged() -> None:
    tags = set()
    for message_type in ALL_MESSAGES:
        config = message_type.__struct_config__
        assert config.frozen, message_type
        assert config.tag_field == "type", message_type
        tags.add(config.tag)
    assert len(tags) == len(ALL_MESSAGES), "tags must be unique"


def test_unknown_fields_are_ignored_by_default() -> None:
    payload = msgspec.json.encode(
        {"type": "task.cancel", "task_id": "t", "token": "ab", "new_field": [1, 2]}
    )
    decoded = Codec[Any](AgentInbox).decode(payload)
    assert decoded.task_id == "t"
