"""TaskContext: what a skill gets besides its input."""

import asyncio
import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from natsfleet.agents.attempt import Attempt
from natsfleet.agents.output import OutputBuffer

if TYPE_CHECKING:
    from natsfleet.agents.llm.types import ChatMessage, Tier
    from natsfleet.agents.loop.engine import LoopStats
    from natsfleet.agents.loop.fleet import SkillTool
    from natsfleet.agents.loop.host import LoopHost
    from natsfleet.agents.loop.journal import Journal
    from natsfleet.agents.loop.tools import Tool
    from natsfleet.agents.mcp.servers import MCPServers
    from natsfleet.agents.mcp.tools import MCPTool

T = TypeVar("T")


class SubtaskRunner(Protocol):
    """The runtime's side of `ctx.call`."""

    async def call(
        self,
        attempt: Attempt,
        skill: str,
        input: Any,
        output_type: type[T],
        timeout_s: float | None,
    ) -> T: ...


class _TaskLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the task and attempt, and adds them as fields."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return f"[{extra['task_id']}#{extra['attempt']}] {msg}", kwargs


class TaskContext:
    """The running attempt as its skill sees it.

    Attributes:
        task_id: The task's id (stable across attempts).
        attempt: Attempt number, 1 for the first.
        token: This attempt's fencing token.
        skill: The skill's name.
        instance_id: The instance running it.
        parent_id: The parent task when this is a sub-task.
        cancelled: Set when a Cancel or a hand-back reached this attempt; the
            skill also gets `asyncio.CancelledError` at its next await.
        log: A logger whose lines carry the task id and attempt.
        span: The current trace span (None until tracing is configured).
        llm: The LLM client (filled by `natsfleet.agents.llm`; None until then).
        tools: Tools by name (empty until an agent or the LLM layer adds some).
    """

    def __init__(
        self,
        attempt: Attempt,
        *,
        output: OutputBuffer,
        runner: SubtaskRunner,
        logger: logging.Logger,
        llm: Any = None,
        bind_llm: Callable[[], Any] | None = None,
        tools: Mapping[str, Any] | None = None,
        loop_host: "Callable[[], LoopHost] | None" = None,
        mcp: "Callable[[], MCPServers] | None" = None,
    ) -> None:
        self._attempt = attempt
        self._output = output
        self._runner = runner
        self.task_id = attempt.task_id
        self.attempt = attempt.number
        self.token = attempt.token
        self.skill = attempt.skill.name
        self.instance_id = attempt.instance_id
        self.parent_id = attempt.assign.parent_id
        self.workflow_id = attempt.assign.workflow_id
        self.budget_usd = attempt.assign.budget_usd
        #: A person's decision on the tool call this task's loop paused for, if any.
        self.approval = attempt.assign.approval
        self.cancelled: asyncio.Event = attempt.cancelled
        self.log = _TaskLogger(
            logger, {"task_id": attempt.task_id, "attempt": attempt.number, "token": attempt.token}
        )
        self.span: Any = None
        self._llm: Any = llm
        # Binding the router to the attempt costs ~3 µs; most skills never
        # call an LLM, so it happens on first use of `ctx.llm`.
        self._bind_llm = bind_llm
        self._bound_llm: Any = None  # what the runtime's binder gave (its usage is reported)
        self.tools: dict[str, Any] = dict(tools or {})
        self._loop_host = loop_host
        self._mcp = mcp
        self._journal: Journal | None = None
        self._journal_lock = asyncio.Lock()
        #: What each `loop()` of this attempt did (model calls made and replayed, ...).
        self.loop_stats: list[LoopStats] = []

    @property
    def llm(self) -> Any:
        if self._bind_llm is not None:
            self._llm = self._bound_llm = self._bind_llm()
            self._bind_llm = None
        return self._llm

    @llm.setter
    def llm(self, value: Any) -> None:
        self._llm, self._bind_llm = value, None

    def bound_llm(self) -> Any:
        """The client the runtime bound for this attempt, if the skill used `ctx.llm`
        (its usage goes with the outcome); never one the skill assigned itself."""
        return self._bound_llm

    @property
    def tenant(self) -> str | None:
        """Who the task is for (`Submit.tenant`), if the submitter said; its model
        calls count against that tenant's limits and budgets (docs/llm.md)."""
        return self._attempt.assign.tenant

    @property
    def deadline(self) -> float | None:
        """When this attempt must end, in event-loop time (`loop.time()`), if it must."""
        return self._attempt.deadline

    @property
    def remaining_s(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        if self._attempt.deadline is None:
            return None
        return max(0.0, self._attempt.deadline - asyncio.get_running_loop().time())

    def progress(self, fraction: float | None = None, note: str = "") -> None:
        """Report progress (0.0-1.0 and/or a note): in heartbeats and to watchers.

        Cheap to call often: it is recorded at once and published batched.
        """
        if fraction is not None:
            fraction = min(1.0, max(0.0, fraction))
        self._attempt.progress = fraction
        self._attempt.note = note
        self._output.set_progress(fraction, note)

    def stream(self, chunk: str) -> None:
        """Send partial output to watchers (batched; call it per token if you like)."""
        self._output.add_text(chunk)

    async def call(
        self, skill: str, input: Any, output_type: type[T], *, timeout_s: float | None = None
    ) -> T:
        """Run `skill` as a sub-task through the supervisor and return its output.

        The child's idempotency key is `<task id>/<call index>`, so a retried
        attempt gets the children it already finished instead of running them
        again. This attempt's capacity slot is given up while it waits.

        Raises:
            SubtaskFailed: the child ended failed, canceled or rejected.
            WaitTimeout: `timeout_s` (or this attempt's deadline) passed first.
        """
        return await self._runner.call(self._attempt, skill, input, output_type, timeout_s)

    def progress_event(self, note: str) -> None:
        """A progress note every watcher sees, in order (not replaced by the
        next one, as `progress` notes are): the loop's tool starts and ends."""
        self._output.add_event(note)

    async def journal(self) -> "Journal":
        """This attempt's view of the task's loop journal, claimed on first use.

        Without a fleet (a context built by hand) the journal lives in memory.
        """
        async with self._journal_lock:
            if self._journal is None:
                from natsfleet.agents.loop.journal import Journal

                attempt = self._attempt
                if self._loop_host is not None:
                    journal = self._loop_host().journal(attempt)
                else:
                    journal = Journal(
                        None,
                        bucket="",
                        task_id=attempt.task_id,
                        token=attempt.token,
                        attempt=attempt.number,
                        instance_id=attempt.instance_id,
                    )
                self._journal = await journal.open()
            return self._journal

    async def loop(
        self,
        prompt: "str | Sequence[ChatMessage]",
        *,
        tools: "Sequence[Tool]" = (),
        output: type[T] | None = None,
        system: str = "",
        max_turns: int = 10,
        max_parallel_tools: int = 4,
        max_tokens: int = 1024,
        tier: "Tier | None" = None,
        model: str | None = None,
    ) -> Any:
        """Let the model decide: call `tools` until it gives a final answer.

        Returns the final text, or the answer decoded as `output` (a msgspec
        type; one corrective turn if the first answer does not validate).
        Every model answer and tool result is journaled (docs/tools.md): a
        later attempt of this task replays them instead of calling the model
        or running the tools again. If the task carries a session, the loop
        starts from the session's conversation and extends it (docs/tools.md,
        "Sessions"), holding the session so no other task's loop runs on it.

        Raises:
            MaxTurnsExceededError, LoopDeadlineError, BudgetExceeded,
            InvalidOutputError: loop-level limits (tool failures never raise:
                the model sees them as results).
            JournalFencedError: a newer attempt of this task owns the journal.
        """
        from natsfleet.agents.llm.types import ChatMessage
        from natsfleet.agents.loop.engine import Loop

        index = self._attempt.loops  # numbered before any await: a stable order
        self._attempt.loops += 1
        journal = await self.journal()

        def start(system: str) -> Loop:
            run = Loop(
                self,
                journal,
                index,
                tools=tools,
                system=system,
                max_turns=max_turns,
                max_parallel_tools=max_parallel_tools,
                max_tokens=max_tokens,
                tier=tier,
                model=model,
            )
            self.loop_stats.append(run.stats)
            return run

        if isinstance(prompt, str):
            messages = [ChatMessage(role="user", content=prompt)]
        else:
            messages = list(prompt)
        session_id = self._attempt.assign.session_id
        if session_id is None or self._loop_host is None:
            return await start(system).run(messages, output)
        # The task continues a session: its conversation goes before the prompt.
        from natsfleet.agents.loop.session_loop import run_in_session

        session = self._loop_host().session(self._attempt, session_id)
        return await run_in_session(self, session, index, journal, start, system, messages, output)

    async def skill_tools(
        self,
        *,
        names: Sequence[str] | None = None,
        agent_types: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        timeout_s: float | None = 300.0,
        handoff: bool = False,
    ) -> "list[SkillTool]":
        """The fleet's skills as tools (by name, by agent type, or all), described
        from the registry; each call is a sub-task with the call's stable key.
        This task's own skill is left out (a model calling it would recurse).

        With `handoff=True` each is a handoff: calling it hands the task over
        to that agent and its answer ends the loop (docs/tools.md, "Handoff").
        """
        from natsfleet.agents.loop.fleet import skill_tools

        if self._loop_host is None:
            raise RuntimeError("fleet skills need the agent runtime")
        return await skill_tools(
            self._loop_host().caller(self._attempt),
            names=names,
            agent_types=agent_types,
            exclude=(*exclude, self.skill),
            timeout_s=timeout_s,
            handoff=handoff,
        )

    async def mcp_tools(self, *servers: str, names: Sequence[str] | None = None) -> "list[MCPTool]":
        """The tools of the agent's MCP servers (`AgentConfig.mcp_servers` and the
        fleet file's), for `loop(tools=...)`: of `servers`, or of every declared
        server when none is named; `names` keeps only those tools. Names,
        descriptions and schemas are the servers'; a server is started (stdio) or
        connected (HTTP) on first use. A call's failure, a dead or hung server
        included, is an error result the model sees (docs/interop.md).

        Raises:
            MCPConfigError: a name is not one of the agent's servers.
            MCPServerUnavailableError: a server could not be started or listed.
        """
        if self._mcp is None:
            raise RuntimeError("MCP servers need the agent runtime")
        return await self._mcp().tools(*servers, names=names)
