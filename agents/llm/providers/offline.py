"""A deterministic provider for fleets without an API key.

It does not pretend to be a model: every output starts with `[offline]`, the
provider is `offline` and the model `offline-extractive`. It is useful enough
for the built-in agents: an extractive summary (researcher), a rule-based
draft from findings (writer) and a criteria check (editor); a request that
offers tools gets the tool-use policy of offline_tools.py. Same input, same
output, on every machine.
"""

import math
import re
from collections import Counter
from collections.abc import AsyncGenerator

import msgspec

from natsfleet.agents.llm.config import ModelConfig, ProviderConfig, ProviderKind
from natsfleet.agents.llm.providers.offline_plan import plan_turn
from natsfleet.agents.llm.providers.offline_tools import OFFLINE_MARK as OFFLINE_TOOL_MARK
from natsfleet.agents.llm.providers.offline_tools import tool_turn
from natsfleet.agents.llm.types import (
    Done,
    LLMRequest,
    LLMResponse,
    StreamEvent,
    TextDelta,
    Tier,
    TokenUsage,
    ToolCall,
    ToolCallDelta,
    UsageDelta,
)

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL = "offline-extractive"
OFFLINE_MARK = OFFLINE_TOOL_MARK  # one label for every offline output

#: The deployment used when no API key is configured; it serves every tier.
OFFLINE_DEPLOYMENT = ModelConfig(
    name=OFFLINE_MODEL,
    provider=OFFLINE_PROVIDER,
    model=OFFLINE_MODEL,
    tier=Tier.LARGE,
    context_window_tokens=1_000_000,
    quality=0.1,
    latency_ms=1.0,
)
OFFLINE_PROVIDER_CONFIG = ProviderConfig(kind=ProviderKind.OFFLINE, require_key=False)

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.*\S)\s*$")
_LABEL = re.compile(r"^\s*(topic|title|question|query|subject)\s*:\s*(.+)$", re.I)
_STOP = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in
    into is it its may more most must no not of on or our should so such than that the their them
    then there these they this those to was we were what when where which who why will with would
    you your about also any each other over under very just only own same both all some""".split()
)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP]


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        bullet = _BULLET.match(line)
        line = bullet.group(1) if bullet else line.strip()
        if line and not _LABEL.match(line):
            out += [s.strip() for s in _SENTENCE.split(line) if len(s.split()) >= 3]
    return out


def _focus(text: str) -> str:
    for line in text.splitlines():
        match = _LABEL.match(line)
        if match:
            return match.group(2).strip()
    return ""


def summarise(text: str, *, max_sentences: int = 5) -> str:
    """Extractive summary: the sentences densest in frequent terms (and the focus terms)."""
    sentences = list(dict.fromkeys(_sentences(text)))
    if not sentences:
        return f"{OFFLINE_MARK} Nothing to summarise."
    freq = Counter(w for s in sentences for w in _words(s))
    focus = set(_words(_focus(text)))

    def score(item: tuple[int, str]) -> tuple[float, int]:
        words = _words(item[1])
        base = sum(freq[w] for w in words) / math.sqrt(len(words) + 1)
        return (base + 3.0 * len(focus.intersection(words)), -item[0])

    keep = max(1, min(max_sentences, math.ceil(len(sentences) / 3)))
    chosen = sorted(sorted(enumerate(sentences), key=score, reverse=True)[:keep])
    return f"{OFFLINE_MARK} Summary:\n" + "\n".join(f"- {s}" for _, s in chosen)


def draft(text: str) -> str:
    """A rule-based draft: a title, an opening, the findings grouped into paragraphs."""
    findings = [m.group(1) for line in text.splitlines() if (m := _BULLET.match(line))]
    if not findings:
        findings = _sentences(text)
    topic = _focus(text) or (findings[0].rstrip(".") if findings else "the topic")
    if not findings:
        return f"{OFFLINE_MARK} # {topic}\n\nNo findings were given to draft from."
    paras = [
        " ".join(f if f.endswith((".", "!", "?")) else f + "." for f in findings[i : i + 3])
        for i in range(0, len(findings), 3)
    ]
    opening = f"This draft covers {len(findings)} finding(s) on {topic}."
    closing = "In short: " + findings[0].rstrip(".") + "."
    return "\n\n".join([f"{OFFLINE_MARK} # {topic}", opening, *paras, closing])


_MAX_WORDS = re.compile(r"(?:under|at most|no more than|fewer than|max(?:imum)?)\s+(\d+)\s+words")
_MIN_WORDS = re.compile(r"(?:at least|min(?:imum)?|more than)\s+(\d+)\s+words")


def _check(criterion: str, body: str) -> tuple[bool, str]:
    lowered = criterion.lower()
    count = len(body.split())
    if m := _MAX_WORDS.search(lowered):
        return count <= int(m.group(1)), f"{count} words"
    if m := _MIN_WORDS.search(lowered):
        return count >= int(m.group(1)), f"{count} words"
    if any(k in lowered for k in ("cite", "source", "reference")):
        ok = bool(re.search(r"\[\d+\]|https?://|\bsource\b", body, re.I))
        return ok, "citations found" if ok else "no citations found"
    wanted = set(_words(criterion)) - {"mention", "mentions", "include", "includes", "draft"}
    have = set(_words(body))
    missing = sorted(wanted - have)
    ok = len(missing) <= len(wanted) // 2
    return ok, "covered" if ok else "missing: " + ", ".join(missing[:5])


def edit(text: str) -> str:
    """Check a draft against the listed criteria: APPROVE, or REVISE with what is missing."""
    criteria: list[str] = []
    body_lines: list[str] = []
    in_criteria = False
    for line in text.splitlines():
        if "criteria" in line.lower() and line.rstrip().endswith(":"):
            in_criteria = True
            continue
        if line.lower().startswith("draft:"):
            in_criteria = False
            body_lines.append(line[6:])
            continue
        bullet = _BULLET.match(line)
        if in_criteria and bullet:
            criteria.append(bullet.group(1))
        else:
            in_criteria = in_criteria and not line.strip()
            body_lines.append(line)
    body = "\n".join(body_lines)
    results = [(c, *_check(c, body)) for c in criteria]
    verdict = "APPROVE" if all(ok for _, ok, _ in results) else "REVISE"
    lines = [f"{OFFLINE_MARK} VERDICT: {verdict}"]
    lines += [f"- [{'x' if ok else ' '}] {c} ({why})" for c, ok, why in results]
    if not criteria:
        lines.append("- no criteria were given; checked nothing")
    return "\n".join(lines)


def respond(request: LLMRequest) -> str:
    """The offline answer: the system prompt picks editor, writer or summariser rules."""
    task = f"{request.system}\n{request.messages[0].content if request.messages else ''}".lower()
    text = "\n".join(m.content for m in request.messages if m.role != "assistant")
    if any(k in task for k in ("editor", "review", "criteria", "approve")):
        return edit(text)
    if any(k in task for k in ("writer", "draft", "write ")):
        return draft(text)
    return summarise(text)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class OfflineProvider:
    """Deterministic, free, no network. Outputs are marked `[offline]`."""

    offline = True

    def __init__(self, name: str = OFFLINE_PROVIDER) -> None:
        self.name = name

    def _answer(self, request: LLMRequest) -> LLMResponse:
        calls: tuple[ToolCall, ...] = ()
        if request.tools:  # the labelled tool-use policies (offline_tools.py, offline_plan.py)
            policy = tool_turn if request.parallel_tool_calls else plan_turn
            text, calls = policy(request)
        else:
            text = respond(request)
        prompt = request.system + "".join(m.content for m in request.messages)
        return LLMResponse(
            text=text,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else "stop",
            usage=TokenUsage(input_tokens=_tokens(prompt), output_tokens=_tokens(text)),
            provider=OFFLINE_PROVIDER,
            model=OFFLINE_MODEL,
            offline=True,
        )

    async def complete(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> LLMResponse:
        return self._answer(request)

    async def stream(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> AsyncGenerator[StreamEvent, None]:
        response = self._answer(request)
        words = response.text.split(" ")
        for i in range(0, len(words), 8):
            yield TextDelta(text=" ".join(words[i : i + 8]) + (" " if i + 8 < len(words) else ""))
        for index, call in enumerate(response.tool_calls):
            arguments = msgspec.json.encode(call.arguments).decode()
            yield ToolCallDelta(index=index, id=call.id, name=call.name, arguments_json=arguments)
        yield UsageDelta(usage=response.usage)
        yield Done(response=response)

    async def aclose(self) -> None:
        return None
