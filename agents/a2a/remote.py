"""A connection to one remote A2A agent: send a skill a message, follow its task
to the end, cancel it if we stop waiting.

```python
async with RemoteAgent("https://agents.example.com/", api_key=key) as remote:
    result = await remote.run(remote.card.skill("translate"), {"text": "bonjour"})
```

`run` never hangs on a dead agent: a refused connection or a stream cut
mid-task raises `RemoteUnavailable` (retryable). It can wait as long as the
remote task runs; the caller bounds it (a tool's timeout, an attempt's
deadline) by cancelling it, and then the remote task is cancelled too, within
`cancel_timeout_s`.
"""

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from natsfleet.agents.a2a.card import (
    RemoteCard,
    RemoteSkill,
    check_same_origin,
    check_url,
    fetch_card,
)
from natsfleet.agents.a2a.errors import (
    CardUnavailable,
    RemoteProtocolError,
    RemoteTaskEnded,
    RemoteUnavailable,
)
from natsfleet.agents.a2a.messages import COMPLETED, A2AResult, TaskView, build_message

if TYPE_CHECKING:
    import httpx
    from a2a.client import Client
    from a2a.types import SendMessageRequest

log = logging.getLogger(__name__)

#: (status note, new artifact text) of each event, for progress and streaming.
OnUpdate = Callable[[str, str], None]

#: Default bound on a remote task's result held in memory (characters).
MAX_RESULT_CHARS = 8_000_000

# A stream that ends before the task does (a server that closes it early) is
# followed by polling, at these intervals.
_POLL_S = (0.2, 0.5, 1.0, 2.0)


class RemoteAgent:
    """One remote A2A agent: its card (fetched by `open`) and an SDK client.

    Args:
        url: The agent's base URL (its card is at `/.well-known/agent-card.json`).
        api_key: Sent as the card's security schemes ask (an API-key header it
            names, else `Authorization: Bearer`).
        headers: More HTTP headers for every request.
        connect_timeout_s: Bound on connecting and on each non-streaming request.
        cancel_timeout_s: Bound on cancelling the remote task when we stop waiting.
        max_result_chars: Most a task's artifacts may hold (text, and data as
            JSON); more is a `RemoteProtocolError` and the task is cancelled.

    The key and headers go only to the origin (scheme, host, port) the card
    was fetched from: a card whose JSON-RPC interface is elsewhere is refused
    (`CardUnavailable`) when there are credentials to send.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout_s: float = 10.0,
        cancel_timeout_s: float = 5.0,
        max_result_chars: int = MAX_RESULT_CHARS,
    ) -> None:
        self.url = check_url(url)
        self.max_result_chars = max_result_chars
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._connect_timeout_s = connect_timeout_s
        self.cancel_timeout_s = cancel_timeout_s
        self._http: httpx.AsyncClient | None = None
        self._client: Client | None = None
        self._card: RemoteCard | None = None

    @property
    def card(self) -> RemoteCard:
        if self._card is None:
            raise RuntimeError("RemoteAgent.open() was not called")
        return self._card

    async def open(self, card: RemoteCard | None = None) -> Self:
        """Fetch the card (unless given) and make the client. Raises `CardUnavailable`."""
        import httpx
        from a2a.client import ClientConfig, ClientFactory

        # No read timeout: a stream may rightly be quiet for as long as the
        # task runs; the caller's own bound cancels it.
        timeout = httpx.Timeout(self._connect_timeout_s, read=None)
        # One connection per task followed at once (a proxy's capacity bounds
        # them), not httpx's 100, past which a task would wait for a slot.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        http = httpx.AsyncClient(headers=self._headers, timeout=timeout, limits=limits)
        try:
            self._card = card or await fetch_card(http, self.url)
            if self._api_key or self._headers:
                check_same_origin(self._card)
            http.headers.update(self._card.key_headers(self._api_key))
            config = ClientConfig(httpx_client=http, streaming=True)
            self._client = ClientFactory(config).create(self._card.card)
        except ValueError as exc:  # the SDK: no transport it speaks
            await http.aclose()
            raise CardUnavailable(self.url, str(exc)) from None
        except BaseException:
            await http.aclose()
            raise
        self._http = http
        return self

    async def aclose(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _sdk(self) -> "Client":
        if self._client is None:
            raise RemoteUnavailable(self.url, "the client is closed")
        return self._client

    async def run(
        self, skill: RemoteSkill, arguments: dict[str, Any], on_update: OnUpdate | None = None
    ) -> A2AResult:
        """Send `skill` a message of `arguments` and wait for its task's result.

        Raises:
            RemoteUnavailable: not reachable, or the connection broke (retryable).
            RemoteTaskEnded: the task failed, was rejected or canceled, or wants input.
            RemoteProtocolError: the agent refused the request or answered nonsense.
        """
        from a2a.types import SendMessageRequest

        view = TaskView()
        named = asyncio.Event()  # set once the remote task's id (or a reply) is known
        request = SendMessageRequest(message=build_message(skill, arguments))
        # The task is followed in its own asyncio task, so a cancellation of
        # ours (a timeout, a Cancel) leaves it reading: a task id that has not
        # arrived yet still can, and then the remote task is cancelled by it.
        follow = asyncio.ensure_future(self._follow(request, view, named, on_update))
        try:
            await asyncio.shield(follow)
        except asyncio.CancelledError:
            await self._stop(follow, view, named)
            raise
        if view.reply is None and view.state != COMPLETED:
            raise RemoteTaskEnded(self.url, view.task_id, view.state_name, view.reason)
        return view.result()

    async def _follow(
        self,
        request: "SendMessageRequest",
        view: TaskView,
        named: asyncio.Event,
        on_update: OnUpdate | None,
    ) -> None:
        with self._errors():
            async for event in self._sdk().send_message(request):
                note, text = view.take(event)
                if view.task_id or view.final:
                    named.set()
                if view.size > self.max_result_chars:
                    if view.task_id and not view.final:
                        await self._cancel_quietly(view.task_id)
                    raise RemoteProtocolError(
                        self.url, f"its result is over {self.max_result_chars:,} characters"
                    )
                if on_update is not None and (note or text):
                    on_update(note, text)
                if view.final:
                    return
            if not view.final:
                await self._poll(view)

    async def _stop(
        self, follow: "asyncio.Future[None]", view: TaskView, named: asyncio.Event
    ) -> None:
        """We stop waiting: cancel the remote task (waiting at most
        `cancel_timeout_s` for its id if it has not come yet), then the reading."""
        try:
            if not follow.done() and not named.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cancel_timeout_s):
                        await named.wait()
            if view.task_id and not view.final:
                await self._cancel_quietly(view.task_id)
            elif not view.task_id:
                log.warning("a message to %s was abandoned before its task id came", self.url)
        finally:
            follow.cancel()
            with contextlib.suppress(BaseException):
                await follow

    async def _poll(self, view: TaskView) -> None:
        """The stream ended before the task did: read the task until it ends."""
        from a2a.types import GetTaskRequest

        if not view.task_id:
            raise RemoteProtocolError(self.url, "the stream ended without a task or a reply")
        for n in itertools.count():
            await asyncio.sleep(_POLL_S[min(n, len(_POLL_S) - 1)])
            view.take_task(await self._sdk().get_task(GetTaskRequest(id=view.task_id)))
            if view.final:
                return

    async def cancel(self, task_id: str) -> None:
        """Cancel a remote task (bounded by `cancel_timeout_s`)."""
        from a2a.types import CancelTaskRequest

        with self._errors():
            async with asyncio.timeout(self.cancel_timeout_s):
                await self._sdk().cancel_task(CancelTaskRequest(id=task_id))

    async def _cancel_quietly(self, task_id: str) -> None:
        """Cancel on our way out: shielded from the cancellation that brought us
        here, bounded, and never raising (the caller is already stopping)."""
        try:
            await asyncio.shield(self.cancel(task_id))
            log.info("remote task %s at %s cancelled", task_id, self.url)
        except (Exception, asyncio.CancelledError) as exc:
            log.warning("remote task %s at %s not cancelled: %s", task_id, self.url, exc)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The SDK's and httpx's errors as ours: transport ones retryable."""
        import httpx
        from a2a.client import A2AClientError as SdkClientError
        from a2a.utils.errors import A2AError

        try:
            yield
        except TimeoutError as exc:
            raise RemoteUnavailable(self.url, f"no answer in time ({exc})") from None
        except (SdkClientError, httpx.HTTPError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            if _refused(exc):  # asking again gets the same answer
                raise RemoteProtocolError(self.url, detail) from None
            raise RemoteUnavailable(self.url, detail) from None
        except A2AError as exc:
            raise RemoteProtocolError(self.url, f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # the SDK: a response with neither task nor message
            raise RemoteProtocolError(self.url, str(exc)) from None


def _refused(exc: BaseException) -> bool:
    """An HTTP 4xx answer (bad key, no such path), which the SDK wraps: not
    worth retrying, unlike a 5xx, a timeout (408) or a rate limit (429)."""
    import httpx

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, httpx.HTTPStatusError):
            status = cause.response.status_code
            return 400 <= status < 500 and status not in (408, 429)
        cause = cause.__cause__
    return False
