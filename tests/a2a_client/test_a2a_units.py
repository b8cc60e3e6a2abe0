"""The A2A client's parts that need no remote process: the SDK imported only
by agents that use A2A, and cards read as natsfleet's gateway writes them."""

import subprocess
import sys

import msgspec
import pytest

from natsfleet.agents.a2a import (
    A2AInput,
    CardUnavailable,
    ProxySettings,
    RemoteAgent,
    proxy_agent,
    read_card,
)
from natsfleet.agents.a2a.card import SCHEMAS_EXTENSION, TEXT_INPUT_SCHEMA
from natsfleet.gateway.a2a import card as gateway_card
from natsfleet.protocols import AgentInfo, SkillSpec
from tests.procs import agent_env


def test_an_agent_that_uses_no_a2a_never_imports_the_sdk() -> None:
    # Idle agent memory matters: the a2a SDK (and protobuf) load only with A2A.
    code = (
        "import sys\n"
        "import natsfleet.agents, natsfleet.agents.runtime, natsfleet.agents.loop\n"
        "import natsfleet.cli.main\n"
        "from natsfleet.agents import load_agent\n"
        "load_agent('tests.fleet_agents:EchoAgent')\n"
        "assert 'a2a' not in sys.modules, 'a2a imported'\n"
        "from natsfleet.agents.a2a import RemoteSkill\n"
        "from natsfleet.agents.a2a.messages import build_message\n"
        "build_message(RemoteSkill(id='x', name='x', description=''), {'text': 'hi'})\n"
        "assert 'a2a' in sys.modules  # the check itself can see it\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=agent_env(), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


def test_a_card_from_the_fleet_gateway_gives_its_schemas() -> None:
    assert SCHEMAS_EXTENSION == gateway_card.SCHEMAS_EXTENSION
    spec = SkillSpec(
        name="summarize",
        version="2",
        description="Summarize a text",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
        output_schema={"type": "object", "properties": {"summary": {"type": "string"}}},
    )
    info = AgentInfo(
        agent="summarizer", instance_id="s-1", incarnation="i", skills=(spec,), capacity=1, load=0,
        last_seen_ms=0, alive=True,
    )  # fmt: skip
    settings = gateway_card.CardSettings(name="fleet", description="", url="http://h/")
    card = read_card("http://h/", gateway_card.build_card(settings, (info,)))
    [skill] = card.skills
    assert (skill.id, skill.version, skill.description) == ("summarize", "2", "Summarize a text")
    assert skill.input_schema == spec.input_schema
    assert skill.output_schema == spec.output_schema
    assert card.key_header == "X-API-Key"  # the gateway's API-key scheme
    assert card.key_headers("k") == {"X-API-Key": "k"}

    # Proxied, the skill keeps its schemas; with a prefix, its name is prefixed.
    proxy = proxy_agent(card, ProxySettings(url="http://h/"), skill_prefix="remote.")
    assert proxy.name == "a2a-fleet"
    [proxied] = proxy.skill_specs()
    assert (proxied.name, proxied.input_schema) == ("remote.summarize", spec.input_schema)
    assert list(proxy.skills()) == ["remote.summarize"]


def test_a_card_without_schemas_takes_text() -> None:
    settings = gateway_card.CardSettings(name="Other Agent!", description="", url="http://h/")
    info = AgentInfo(
        agent="a", instance_id="a-1", incarnation="i", capacity=1, load=0, last_seen_ms=0,
        skills=(SkillSpec(name="x", version="1", description="", input_schema={},
                          output_schema={}),),
    )  # fmt: skip
    card = read_card("http://h/", gateway_card.build_card(settings, (info,)))
    [skill] = card.skills
    assert skill.input_schema is None and skill.arguments_schema == TEXT_INPUT_SCHEMA
    proxy = proxy_agent(card, ProxySettings(url="http://h/"))
    assert proxy.name == "a2a-other-agent"
    assert proxy.skill_specs()[0].input_schema == msgspec.json.schema(A2AInput)


async def test_the_key_goes_only_where_the_card_came_from() -> None:
    # A card fetched from one origin that sends messages to another is refused
    # when there is a key to send; without one it is only a URL.
    settings = gateway_card.CardSettings(name="elsewhere", description="", url="http://evil:1/")
    info = AgentInfo(
        agent="a", instance_id="a-1", incarnation="i", capacity=1, load=0, last_seen_ms=0,
        skills=(SkillSpec(name="x"),),
    )  # fmt: skip
    card = read_card("http://h/", gateway_card.build_card(settings, (info,)))
    with pytest.raises(CardUnavailable, match="sends messages to http://evil:1/, another origin"):
        await RemoteAgent("http://h/", api_key="secret").open(card)
    remote = await RemoteAgent("http://h/").open(card)
    await remote.aclose()
