"""What the built-in agents share: typed access to `ctx.llm`, the data folder, text helpers."""

import os
import re
from pathlib import Path

from natsfleet.agents.context import TaskContext
from natsfleet.agents.errors import SkillError
from natsfleet.agents.llm import OFFLINE_MARK, OFFLINE_MODEL, TaskLLM

DATA_DIR_ENV = "NATSFLEET_DATA_DIR"

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[`])")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]+")


def task_llm(ctx: TaskContext) -> TaskLLM:
    """The attempt's LLM client; the runtime always sets one."""
    llm = ctx.llm
    if not isinstance(llm, TaskLLM):
        raise SkillError("this agent needs the LLM layer (ctx.llm is not set)", retryable=False)
    return llm


def is_offline(llm: TaskLLM) -> bool:
    """True when no model with an API key is configured: deterministic stand-ins answer."""
    return llm.router.offline


def model_label(llm: TaskLLM) -> str:
    """The deployment that answered this task's last call, or `offline-extractive`."""
    calls = llm.ledger.calls
    if not calls:
        return OFFLINE_MODEL if is_offline(llm) else "none"
    return calls[-1].deployment


def strip_offline_mark(text: str) -> str:
    return text.replace(OFFLINE_MARK, "").strip()


def data_dir() -> Path:
    """`$NATSFLEET_DATA_DIR`, else `.natsfleet` in the working directory (created)."""
    path = Path(os.environ.get(DATA_DIR_ENV) or ".natsfleet")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sentences(text: str) -> list[str]:
    """Sentences of prose, Markdown headings and list markers removed."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip().lstrip("-*>").strip()
        if not line or line.startswith("#") or line.startswith("```") or line.startswith("|"):
            continue
        out.extend(s.strip() for s in _SENTENCE.split(line) if len(s.split()) >= 4)
    return out


def terms(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if len(w) > 3}
