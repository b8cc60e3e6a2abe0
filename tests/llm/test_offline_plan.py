"""The offline provider's step-by-step policy: one call a turn, chained by the names
of the tools' inputs and outputs (agents/llm/providers/offline_plan.py)."""

from typing import Any

import msgspec

from natsfleet.agents.llm.providers.offline import OfflineProvider
from natsfleet.agents.llm.providers.offline_plan import plan_turn, stem, words
from natsfleet.agents.llm.types import ChatMessage, LLMRequest, ToolCall, ToolSpec


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


STR = {"type": "string"}
OBJ = {"type": "object"}
TOOLS = (
    ToolSpec(name="edit", parameters=_obj({"draft": OBJ}, ("draft",)), returns="EditVerdict"),
    ToolSpec(name="parse_trip", parameters=_obj({"request": STR}, ("request",)), returns="Trip"),
    ToolSpec(
        name="research", parameters=_obj({"question": STR}, ("question",)), returns="Findings"
    ),
    ToolSpec(
        name="write",
        parameters=_obj({"findings": OBJ, "brief": STR, "previous": OBJ}, ("findings",)),
        returns="Draft",
    ),
)


def _run(request: str, tools: tuple[ToolSpec, ...], results: dict[str, Any]) -> list[str]:
    """Drive the policy to its final answer; each tool 'returns' `results[name]`."""
    messages = [ChatMessage(role="user", content=request)]
    called: list[str] = []
    for _ in range(10):
        text, calls = plan_turn(LLMRequest(messages=tuple(messages), tools=tools))
        assert text.startswith("[offline]")
        if not calls:
            return called
        (call,) = calls  # one call a turn
        called.append(call.name)
        messages.append(ChatMessage(role="assistant", content=text, tool_calls=calls))
        content = msgspec.json.encode(results[call.name]).decode()
        messages.append(ChatMessage(role="tool", content=content, tool_call_id=call.id))
    raise AssertionError(f"no final answer: {called}")


def test_words_are_stemmed_and_camel_case_split() -> None:
    assert (
        stem("bookings") == "book" and stem("flights") == "flight" and stem("address") == "address"
    )
    assert words("FlightSearchResult") == {"flight", "search", "result"}


def test_an_article_is_research_then_write_then_edit() -> None:
    results = {
        "research": {"question": "q", "findings": [{"text": "x"}]},
        "write": {"title": "t", "text": "body"},
        "edit": {"verdict": "approve"},
        "parse_trip": {"origin": "BOS"},
    }
    assert _run("Write an article about leases", TOOLS, results) == ["research", "write", "edit"]


def test_inputs_come_from_earlier_results_and_the_request() -> None:
    messages = [ChatMessage(role="user", content="Write an article about leases")]
    findings = {"question": "q", "findings": [{"text": "x"}]}
    messages += [
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=(ToolCall(id="1", name="research", arguments={"question": "q"}),),
        ),
        ChatMessage(role="tool", content=msgspec.json.encode(findings).decode(), tool_call_id="1"),
    ]
    _, (call,) = plan_turn(LLMRequest(messages=tuple(messages), tools=TOOLS))
    # `findings` is the whole result (its same-named field is a list, not the object
    # asked for); `brief` is the request.
    assert call.name == "write"
    assert call.arguments == {"findings": findings, "brief": "Write an article about leases"}


def test_a_tool_waits_for_the_producer_of_one_of_its_inputs() -> None:
    tools = (
        ToolSpec(name="book", parameters=_obj({"hold": OBJ, "offer": OBJ})),
        ToolSpec(name="hold_offer", parameters=_obj({"search": OBJ, "trip": OBJ})),
        ToolSpec(name="parse_trip", parameters=_obj({"request": STR}, ("request",))),
        ToolSpec(
            name="search_flights",
            parameters=_obj({"origin": STR, "destination": STR}, ("origin", "destination")),
            returns="FlightSearchResult",
        ),
    )
    results = {
        "parse_trip": {"origin": "BOS", "destination": "JFK"},
        "search_flights": {"offers": []},
        "hold_offer": {"hold_id": "h", "offer": {"offer_id": "o"}},
        "book": {"booking_id": "b"},
    }
    assert _run("Book me a flight", tools, results) == [
        "parse_trip", "search_flights", "hold_offer", "book",
    ]  # fmt: skip


def test_no_tool_named_in_the_request_is_a_final_answer() -> None:
    assert _run("What time is it?", TOOLS, {}) == []


def test_the_provider_uses_it_when_calls_are_one_at_a_time() -> None:
    provider = OfflineProvider()
    request = LLMRequest(
        messages=(ChatMessage(role="user", content="Write an article about leases"),),
        tools=TOOLS,
    )
    parallel = provider._answer(request)
    step = provider._answer(msgspec.structs.replace(request, parallel_tool_calls=False))
    assert [c.name for c in step.tool_calls] == ["research"]
    assert [c.name for c in parallel.tool_calls] == ["write"]  # the other policy: names only
