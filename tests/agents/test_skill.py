"""Declaring agents and skills, mapping exceptions, resolving agent specs (no server)."""

import msgspec
import pytest

from natsfleet.agents import (
    Agent,
    AgentConfig,
    AgentDefinitionError,
    AgentNotFound,
    SkillError,
    SubtaskFailed,
    TaskContext,
    available_agents,
    load_agent,
    skill,
)
from natsfleet.agents.builtin import EchoAgent as BuiltinEcho
from natsfleet.agents.errors import MAX_DETAIL_CHARS, describe_exception
from natsfleet.bus import RequestTimeout
from natsfleet.protocols import DlqReason, ProtocolError
from tests.fleet_agents import EchoAgent, Text


class Later(Agent):
    name = "later"

    @skill(name="later.skill", version="3", description="explicit")
    async def run(self, input: "Defined", ctx: TaskContext) -> "Defined":
        return input


class Defined(msgspec.Struct, frozen=True):
    value: int


def test_skill_types_come_from_annotations_resolved_late() -> None:
    (definition,) = Later.skills().values()
    assert (definition.name, definition.version, definition.description) == (
        "later.skill",
        "3",
        "explicit",
    )
    assert definition.input_type is Defined and definition.output_type is Defined
    spec = Later.skill_specs()[0]
    assert spec.input_schema["$ref"].endswith("Defined")
    assert definition.decode_input(b'{"value": 3}') == Defined(3)
    with pytest.raises(ProtocolError) as caught:
        definition.decode_input(b'{"value": "x"}')
    assert caught.value.reason == DlqReason.BAD_INPUT


def test_inherited_skills_and_docstring_descriptions() -> None:
    class Louder(EchoAgent):
        name = "louder"

    assert set(Louder.skills()) == {"echo", "sleep", "fail", "stream"}
    assert Louder.skills()["sleep"].description.startswith("Sleep for `ms`")


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(AgentDefinitionError, match="async def"):

        class Sync(Agent):
            name = "sync"

            @skill
            def run(self, input: Text, ctx: TaskContext) -> Text:  # type: ignore[type-var]
                return input

    class Unannotated(Agent):
        name = "unannotated"

        @skill
        async def run(self, input, ctx):  # type: ignore[no-untyped-def]
            return input

    with pytest.raises(AgentDefinitionError, match="annotate"):
        Unannotated.skills()

    class Empty(Agent):
        name = "empty"

    with pytest.raises(AgentDefinitionError, match="no @skill"):
        Empty.skills()

    with pytest.raises(AgentDefinitionError, match="subject token"):

        class Dotted(Agent):
            name = "has.dot"

    with pytest.raises(ValueError, match="capacity"):
        AgentConfig(capacity=0)


def test_exceptions_become_type_and_message() -> None:
    assert describe_exception(SkillError("nope", retryable=False)) == ("SkillError", "nope", False)
    assert describe_exception(KeyError("k")) == ("KeyError", "'k'", True)
    assert describe_exception(RequestTimeout("s", 1.0))[2] is True
    failed = SubtaskFailed("T1", "echo", "failed", "boom")
    assert describe_exception(failed)[2] is False
    long = describe_exception(ValueError("x" * (MAX_DETAIL_CHARS + 50)))[1]
    assert len(long) == MAX_DETAIL_CHARS + 3


def test_loader_resolves_builtins_paths_and_refuses_the_rest() -> None:
    assert load_agent("echo") is BuiltinEcho
    assert load_agent("tests.fleet_agents:EchoAgent") is EchoAgent
    assert "echo" in available_agents()
    with pytest.raises(AgentNotFound, match=r"known: .*echo"):
        load_agent("nope")
    with pytest.raises(AgentNotFound, match="cannot import"):
        load_agent("no_such_module:Agent")
    with pytest.raises(AgentNotFound, match="no 'Missing'"):
        load_agent("tests.fleet_agents:Missing")
    with pytest.raises(AgentNotFound, match="not a natsfleet Agent"):
        load_agent("tests.fleet_agents:Text")


def test_an_error_type_is_cut_to_a_wire_label() -> None:
    """A Failure whose error_type broke the edge rule would be refused whole."""
    from natsfleet.protocols import Failure, check_struct
    from natsfleet.protocols.limits import LABEL_MAX_CHARS

    error_type, _, _ = describe_exception(SkillError("x", error_type="E" * 10_000))
    assert error_type == "E" * LABEL_MAX_CHARS
    failure = Failure(task_id="t", token="k", attempt=1, instance_id="i", agent="a",
                      error_type=error_type)  # fmt: skip
    assert check_struct(failure) is failure
