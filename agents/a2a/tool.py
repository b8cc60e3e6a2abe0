"""A remote A2A agent's skills as tools of the agent loop (docs/interop.md,
"Using a remote A2A agent as a tool").

```python
remote = A2AAgent("https://agents.example.com/", api_key=os.environ["REMOTE_KEY"])
async with remote:
    answer = await ctx.loop(prompt, tools=remote.tools())
```

Each skill of the card is one tool: its arguments are the skill's input schema
when the card has one (natsfleet's schemas extension), else `text` and an
optional `data` object. A call sends one message and waits for the remote
task's result (`A2AResult`), at most the tool's `timeout_s`; a call stopped
by its timeout cancels the remote task. A failed, rejected or canceled remote
task and an unreachable agent are errors the model sees, as any tool's.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from natsfleet.agents.a2a.card import RemoteSkill
from natsfleet.agents.a2a.remote import MAX_RESULT_CHARS, RemoteAgent
from natsfleet.agents.llm.types import ToolSpec
from natsfleet.agents.loop.tools import (
    ToolArgumentsError,
    ToolContext,
    inline_schema,
    provider_tool_name,
)


def tool_name(skill_id: str) -> str:
    return provider_tool_name(skill_id, "a2a_skill")


class A2ATool:
    """One skill of a remote A2A agent as a loop tool (`Tool` protocol)."""

    def __init__(
        self, remote: RemoteAgent, skill: RemoteSkill, *, timeout_s: float | None, name: str = ""
    ) -> None:
        self.remote = remote
        self.skill = skill
        self.timeout_s = timeout_s
        # msgspec's schemas (natsfleet's gateway) are a `$ref` into `$defs`.
        parameters = inline_schema(dict(skill.arguments_schema))
        if parameters.get("type") != "object":
            parameters = {"type": "object"}  # providers take object arguments only
        agent = remote.card.name or remote.url
        description = skill.description or f"skill {skill.name}"
        self.spec = ToolSpec(
            name=name or tool_name(skill.id),
            description=f"{description} (skill {skill.id} of the A2A agent {agent})",
            parameters=parameters,
        )

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        if self.skill.input_schema is None:
            text = arguments.get("text")
            data = arguments.get("data")
            if not isinstance(text, str) or not (data is None or isinstance(data, dict)):
                raise ToolArgumentsError(
                    "expected `text` (a string) and optionally `data` (an object)"
                )
        result = await self.remote.run(self.skill, arguments)
        # A skill whose card gives its output schema answers with that value itself.
        if self.skill.output_schema is not None and result.data is not None:
            return result.data
        return result


class A2AAgent(RemoteAgent):
    """A remote A2A agent whose skills are tools (`tools()`, `as_tool(skill)`).

    Args:
        url: The agent's base URL.
        api_key, headers: How to authenticate (see `RemoteAgent`); pass the key
            from the environment or a secret store, never from code.
        timeout_s: Each tool's timeout (the longest a call waits for its task).
        connect_timeout_s, cancel_timeout_s, max_result_chars: see `RemoteAgent`.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = 300.0,
        connect_timeout_s: float = 10.0,
        cancel_timeout_s: float = 5.0,
        max_result_chars: int = MAX_RESULT_CHARS,
    ) -> None:
        super().__init__(
            url,
            api_key=api_key,
            headers=headers,
            connect_timeout_s=connect_timeout_s,
            cancel_timeout_s=cancel_timeout_s,
            max_result_chars=max_result_chars,
        )
        self.timeout_s = timeout_s

    def as_tool(self, skill_id: str, *, name: str = "", timeout_s: float | None = None) -> A2ATool:
        """The tool of one skill (`CardUnavailable` if the card has no such skill)."""
        return A2ATool(
            self,
            self.card.skill(skill_id),
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
            name=name,
        )

    def tools(self, skills: Sequence[str] | None = None) -> list[A2ATool]:
        """One tool per skill of the card (or of `skills`, by id), in card order."""
        chosen = self.card.skills if skills is None else [self.card.skill(s) for s in skills]
        return [A2ATool(self, s, timeout_s=self.timeout_s) for s in chosen]
