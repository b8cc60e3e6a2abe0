"""The loop's parts without a fleet: `@tool` schemas, both SDKs through a whole
multi-turn tool conversation (streamed and not), the offline policy, skill
selection. The journal here is in memory; tests/loop/test_loop.py covers KV."""

from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from natsfleet.agents.llm import ChatMessage, LLMRequest, OfflineProvider, Router, ToolSpec
from natsfleet.agents.llm.providers.offline_tools import tool_turn
from natsfleet.agents.loop import (
    FunctionTool,
    Journal,
    Loop,
    ToolArgumentsError,
    ToolContext,
    ToolResult,
    select_skills,
    tool,
)
from natsfleet.agents.loop.fleet import SkillTool
from natsfleet.protocols import AgentInfo, SkillSpec
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL, llm_config


class Place(msgspec.Struct, frozen=True, kw_only=True):
    city: str
    country: str = "NO"


@tool(timeout_s=5)
def weather(place: Place, days: int = 1, *, ctx: ToolContext) -> str:
    """Weather at a place.

    Longer text that is not part of the description.
    """
    return f"{place.city}: sunny for {days} day(s) ({ctx.key})"


def context(name: str = "weather") -> ToolContext:
    return ToolContext(key="t/0/0/0", task_id="t", attempt=1, token="tok", name=name)


async def test_tool_schema_and_validation() -> None:
    assert isinstance(weather, FunctionTool)
    spec = weather.spec
    assert spec.name == "weather" and spec.description == "Weather at a place."
    params = spec.parameters
    assert params["type"] == "object" and params["required"] == ["place"]
    assert params["properties"]["days"] == {"type": "integer", "default": 1}
    assert "ctx" not in params["properties"]  # the context is not an argument
    assert params["$defs"]["Place"]["required"] == ["city"]
    out = await weather.run({"place": {"city": "Oslo"}, "days": 2}, context())
    assert out == "Oslo: sunny for 2 day(s) (t/0/0/0)"  # a sync function, in a thread
    with pytest.raises(ToolArgumentsError, match="Expected `int`"):
        await weather.run({"place": {"city": "Oslo"}, "days": "two"}, context())
    with pytest.raises(ToolArgumentsError, match="unknown field `extra`"):
        await weather.run({"place": {"city": "Oslo"}, "extra": 1}, context())
    assert weather(Place(city="Bergen"), ctx=context()).startswith("Bergen")  # still callable


@dataclass
class FakeContext:
    """The part of TaskContext the loop uses, around a router bound without the runtime."""

    llm: Any
    task_id: str = "t1"
    attempt: int = 1
    token: str = "tok1"
    budget_usd: float | None = None
    remaining_s: float | None = None
    events: list[str] = field(default_factory=list)

    def progress(self, fraction: float | None = None, note: str = "") -> None:
        self.events.append(note)

    def progress_event(self, note: str) -> None:
        self.events.append(note)


def memory_journal() -> Journal:
    return Journal(None, bucket="", task_id="t1", token="tok1", attempt=1, instance_id="i")


@tool
async def lookup(city: str) -> str:
    """Population of a city."""
    return {"Oslo": "709k", "Bergen": "291k"}.get(city, "unknown")


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
@pytest.mark.parametrize("streamed", [True, False])
async def test_both_sdks_run_a_multi_turn_tool_conversation(
    wire: WireServer, kind: str, streamed: bool
) -> None:
    """Two calls in turn 0 (one with malformed JSON arguments), one in turn 1,
    then the answer; every request carries the whole conversation so far."""
    router = Router.from_config(llm_config(wire, kind))
    chunks: list[str] = []

    async def sink(text: str) -> None:
        chunks.append(text)

    llm = router.bind(task_id="t1", on_chunk=sink if streamed else None)
    # Anthropic's non-streamed API always sends parsed `input`: malformed JSON
    # arguments exist only in streams (and in OpenAI's string arguments).
    malformed = streamed or kind == "openai"
    wire.script(
        MODEL,
        wire.tool_calls(("lookup", {"city": "Oslo"}), ("lookup", '{"city": "Ber')),
        wire.tool_calls(("lookup", {"city": "Bergen"}), text="one more"),
        wire.ok("Oslo 709k, Bergen 291k"),
    )
    try:
        loop = Loop(
            FakeContext(llm=llm),
            memory_journal(),
            0,
            tools=[lookup],
            system="be brief",
            max_turns=5,
            max_parallel_tools=2,
            max_tokens=256,
            tier=None,
            model=MODEL,
        )
        text = await loop.run([ChatMessage(role="user", content="populations?")], None)
    finally:
        await router.aclose()
    assert text == "Oslo 709k, Bergen 291k"
    assert [r.stream for r in wire.requests] == [streamed] * 3
    assert (loop.stats.model_calls, loop.stats.tool_runs) == (3, 3)
    if streamed:
        assert "".join(chunks).endswith("Oslo 709k, Bergen 291k")
    second = wire.requests[1].body["messages"]
    third = wire.requests[2].body["messages"]
    if kind == "anthropic":
        uses = [b for m in second if m["role"] == "assistant" for b in m["content"]]
        assert [b.get("id") for b in uses if b["type"] == "tool_use"] == ["toolu_1", "toolu_2"]
        results = [b for b in second[-1]["content"] if b["type"] == "tool_result"]
        assert [r["tool_use_id"] for r in results] == ["toolu_1", "toolu_2"]
        contents = [r["content"] for r in results]
    else:
        calls = next(m for m in second if m["role"] == "assistant")["tool_calls"]
        assert [c["id"] for c in calls] == ["call_1", "call_2"]
        results = [m for m in second if m["role"] == "tool"]
        assert [r["tool_call_id"] for r in results] == ["call_1", "call_2"]
        contents = [r["content"] for r in results]
    assert contents[0] == "709k"
    if malformed:
        assert "not a JSON object" in contents[1]
    else:
        assert "do not fit the schema" in contents[1]  # `{}`: city missing
    assert len(third) > len(second)  # the conversation grows, nothing is dropped
    assert "291k" in str(third)


async def test_replay_needs_neither_model_nor_tools() -> None:
    """A loop over a journal that holds every turn makes no call at all."""

    class NoModel:
        async def generate(self, request: LLMRequest) -> Any:
            raise AssertionError("the model was called")

    runs: list[str] = []

    @tool
    async def once(x: int) -> int:
        """Counts its runs."""
        runs.append("ran")
        return x

    journal = memory_journal()
    first = Loop(
        FakeContext(llm=OfflineLLM()), journal, 0, tools=[once], system="", max_turns=4,
        max_parallel_tools=1, max_tokens=64, tier=None, model=None,
    )  # fmt: skip
    answer = await first.run([ChatMessage(role="user", content="once with x: 3")], None)
    assert runs == ["ran"] and answer.startswith("[offline] Done")
    again = Loop(
        FakeContext(llm=NoModel()), journal, 0, tools=[once], system="", max_turns=4,
        max_parallel_tools=1, max_tokens=64, tier=None, model=None,
    )  # fmt: skip
    assert await again.run([ChatMessage(role="user", content="once with x: 3")], None) == answer
    assert runs == ["ran"]
    assert (again.stats.replayed_turns, again.stats.replayed_tools) == (2, 1)
    result = journal.get("0.0.0")
    assert isinstance(result, ToolResult) and result.content == "3"


class OfflineLLM:
    """The offline provider as a `ctx.llm` (what a fleet without keys gets)."""

    async def generate(self, request: LLMRequest) -> Any:
        provider = OfflineProvider()
        return await provider.complete(request, None, timeout_s=1)  # type: ignore[arg-type]


def test_offline_policy_is_deterministic_and_labelled() -> None:
    tools = (
        ToolSpec(
            name="search_flights",
            description="Search flights to a destination",
            parameters={
                "type": "object",
                "properties": {"destination": {"type": "string"}, "adults": {"type": "integer"}},
                "required": ["destination", "adults"],
            },
        ),
        ToolSpec(name="send_mail", description="Send an e-mail", parameters={"type": "object"}),
    )
    ask = "Find flights for 2 adults.\ndestination: New York"
    request = LLMRequest(messages=(ChatMessage(role="user", content=ask),), tools=tools)
    text, calls = tool_turn(request)
    assert text.startswith("[offline] calling tools") and tool_turn(request) == (text, calls)
    (call,) = calls
    assert call.name == "search_flights"
    assert call.arguments == {"destination": "New York", "adults": 2}
    answered = LLMRequest(
        messages=(
            ChatMessage(role="user", content=ask),
            ChatMessage(role="assistant", content=text, tool_calls=calls),
            ChatMessage(role="tool", content="AA100 at 09:00", tool_call_id=call.id),
        ),
        tools=tools,
    )
    final, more = tool_turn(answered)
    assert more == () and final.startswith("[offline] Done")
    assert "search_flights: AA100 at 09:00" in final


def test_offline_policy_fills_a_requested_schema() -> None:
    schema = msgspec.json.schema(Place)
    encoded = msgspec.json.encode(schema).decode()
    system = f"Give the final answer as one JSON value matching this JSON Schema: {encoded}"
    request = LLMRequest(
        messages=(ChatMessage(role="user", content="where?\ncity: Oslo"),), system=system
    )
    text, _ = tool_turn(LLMRequest(messages=request.messages, system=system, tools=(
        ToolSpec(name="unrelated_thing", description="zzz"),
    )))  # fmt: skip
    assert text.startswith("[offline] ")
    assert msgspec.json.decode(text.removeprefix("[offline] "), type=Place) == Place(city="Oslo")


def test_skill_selection_by_name_type_and_all() -> None:
    def info(agent: str, *skills: str, alive: bool = True) -> AgentInfo:
        return AgentInfo(
            instance_id=f"{agent}-1", agent=agent, incarnation="x", capacity=1, load=0,
            last_seen_ms=0, alive=alive,
            skills=tuple(SkillSpec(name=s, description=f"does {s}") for s in skills),
        )  # fmt: skip

    fleet = [
        info("writer", "write"),
        info("research", "search", "cite"),
        info("gone", "old", alive=False),
    ]
    everything = [s.name for _, s in select_skills(fleet)]
    assert everything == ["cite", "search", "write"]  # sorted, dead instances left out
    assert [s.name for _, s in select_skills(fleet, agent_types=["research"])] == ["cite", "search"]
    assert [s.name for _, s in select_skills(fleet, names=["write", "old"])] == ["write"]
    assert [s.name for _, s in select_skills(fleet, exclude=["cite"])] == ["search", "write"]


def test_a_skill_tool_is_described_from_its_hello_schema() -> None:
    schema = msgspec.json.schema(Place)
    spec = SkillSpec(name="geo.lookup", description="Find a place", input_schema=schema)
    skill_tool = SkillTool(spec, "geo", caller=None, timeout_s=10)  # type: ignore[arg-type]
    assert skill_tool.spec.name == "geo_lookup"  # provider-safe; the skill keeps its name
    assert skill_tool.skill == "geo.lookup"
    assert skill_tool.spec.parameters["type"] == "object"
    assert skill_tool.spec.parameters["required"] == ["city"]
