"""The offline provider: deterministic, labelled, useful for the built-in agents."""

import subprocess
import sys

from natsfleet.agents.llm import (
    OFFLINE_MARK,
    OFFLINE_MODEL,
    Done,
    LLMConfig,
    Router,
    TextDelta,
    user,
)
from natsfleet.agents.llm.providers.offline import draft, edit, summarise

PASSAGES = """Topic: NATS JetStream
NATS is a lightweight messaging system written in Go. JetStream adds persistence to NATS.
JetStream streams store messages on disk and replay them to consumers. The weather was mild.
Key-value buckets in JetStream are built on streams with one subject per key.
Consumers of JetStream streams acknowledge messages so that none are lost.
"""


def test_summary_is_extractive_and_focused() -> None:
    text = summarise(PASSAGES)
    assert text.startswith(OFFLINE_MARK)
    lines = [line[2:] for line in text.splitlines()[1:]]
    assert lines and all(line in PASSAGES for line in lines)
    assert not any("weather" in line for line in lines)
    assert all("JetStream" in line for line in lines)


def test_draft_uses_the_findings() -> None:
    findings = (
        "Topic: Solar power\n- Panels got 20% cheaper\n- Storage is the bottleneck\n"
        "- Grids need upgrades"
    )
    text = draft(findings)
    assert text.startswith(f"{OFFLINE_MARK} # Solar power")
    for finding in (
        "Panels got 20% cheaper.",
        "Storage is the bottleneck.",
        "Grids need upgrades.",
    ):
        assert finding in text


def test_editor_checks_criteria() -> None:
    prompt = (
        "Criteria:\n- mentions storage\n- under 50 words\n- cites a source\n\n"
        "Draft: Storage is the bottleneck for solar power today."
    )
    text = edit(prompt)
    assert text.startswith(f"{OFFLINE_MARK} VERDICT: REVISE")
    assert "- [x] mentions storage" in text and "- [ ] cites a source" in text
    approved = edit(prompt.replace("today.", "today [1]."))
    assert "VERDICT: APPROVE" in approved


async def test_router_without_keys_goes_offline_and_labels_everything() -> None:
    async with Router.from_config(LLMConfig(), env={}) as router:
        assert router.offline
        llm = router.bind(task_id="t1")
        first = await llm.complete(
            user(PASSAGES, system="You are a researcher: condense passages.")
        )
        again = await llm.complete(
            user(PASSAGES, system="You are a researcher: condense passages.")
        )
        assert first.text == again.text and first.text.startswith(OFFLINE_MARK)
        assert (first.provider, first.model, first.offline) == ("offline", OFFLINE_MODEL, True)
        assert first.cost_usd == 0.0 and llm.usage.cost_usd == 0.0
        events = [
            e
            async for e in llm.stream(
                user("Criteria:\n- be short\n\nDraft: ok", system="You are an editor.")
            )
        ]
        streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
        done = events[-1]
        assert isinstance(done, Done) and done.response.text == streamed
        assert streamed.startswith(f"{OFFLINE_MARK} VERDICT:")


def test_offline_is_deterministic_across_processes() -> None:
    code = (
        "import asyncio\n"
        "from natsfleet.agents.llm import Router, LLMConfig, user\n"
        "async def main():\n"
        "    async with Router.from_config(LLMConfig(), env={}) as r:\n"
        f"        print((await r.complete(user({PASSAGES!r}, system='writer: draft it'))).text)\n"
        "asyncio.run(main())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(outputs) == 1 and next(iter(outputs)).startswith(OFFLINE_MARK)


def test_offline_never_imports_the_sdks() -> None:
    code = (
        "import asyncio, sys\n"
        "from natsfleet.agents.llm import Router, LLMConfig, user\n"
        "async def main():\n"
        "    async with Router.from_config(LLMConfig(), env={}) as r:\n"
        "        await r.complete(user('hello there, how are things going today?'))\n"
        "asyncio.run(main())\n"
        "print('anthropic' in sys.modules, 'openai' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
