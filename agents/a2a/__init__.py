"""natsfleet.agents.a2a: remote A2A agents as loop tools and as fleet agents
(docs/interop.md).

```python
async with A2AAgent(url, api_key=os.environ["REMOTE_KEY"]) as remote:
    answer = await ctx.loop(prompt, tools=remote.tools())
```

`natsfleet agent run a2a:URL` runs a proxy agent (`proxy.py`). Importing this
package imports the `a2a` SDK; nothing else in natsfleet.agents imports it, so
an agent that uses no A2A never loads it.
"""

from natsfleet.agents.a2a.card import RemoteCard, RemoteSkill, fetch_card, read_card
from natsfleet.agents.a2a.errors import (
    A2AClientError,
    CardUnavailable,
    RemoteProtocolError,
    RemoteTaskEnded,
    RemoteUnavailable,
)
from natsfleet.agents.a2a.messages import A2AResult
from natsfleet.agents.a2a.proxy import A2AInput, A2AProxy, ProxySettings, load_proxy, proxy_agent
from natsfleet.agents.a2a.remote import RemoteAgent
from natsfleet.agents.a2a.tool import A2AAgent, A2ATool

__all__ = [
    "A2AAgent",
    "A2AClientError",
    "A2AInput",
    "A2AProxy",
    "A2AResult",
    "A2ATool",
    "CardUnavailable",
    "ProxySettings",
    "RemoteAgent",
    "RemoteCard",
    "RemoteProtocolError",
    "RemoteSkill",
    "RemoteTaskEnded",
    "RemoteUnavailable",
    "fetch_card",
    "load_proxy",
    "proxy_agent",
    "read_card",
]
