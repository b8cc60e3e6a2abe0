"""The fleet-wide LLM governor: rate limits, budgets and health shared through KV.

One `Governor` per process, given to the `Router`. Before each attempt the
router calls `admit`, which books a slot under every rate limit that applies
(the deployment, its API key, the task's tenant; ratelimit.py), waits for
it, and reserves the call's estimated cost under every budget that applies
(the task, its workflow run, the tenant's day, the fleet's day; budgets.py).
The returned `Permit` is settled with the real usage after the call, off the
call's path. Health (cooldowns, circuit) is `FleetHealth` (health.py).

All state lives in the GOVERNOR bucket, one key per scope:
`rate.dep.<deployment>`, `rate.key.<hash of the API key>`,
`rate.tenant.<tenant>`, `budget.task.<id>`, `budget.run.<id>`,
`budget.tenant.<tenant>.<day>`, `budget.fleet.<day>`, `health.<deployment>`.
Names that are not KV-key safe are replaced by a hash (the state keeps the name).
"""

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from nats.js.kv import KeyValue

from natsfleet.agents.llm import budgets, governor_metrics
from natsfleet.agents.llm.budgets import BudgetState
from natsfleet.agents.llm.complexity import estimate_tokens
from natsfleet.agents.llm.config import LLMConfig, ModelConfig
from natsfleet.agents.llm.governor_config import RateLimit
from natsfleet.agents.llm.health import FleetHealth, HealthState
from natsfleet.agents.llm.kvcell import GovernorUnavailable, KVCell, KVStats, Op
from natsfleet.agents.llm.ledger import estimate_cost_usd
from natsfleet.agents.llm.ratelimit import RateState, Throttled, book, earliest, settle_tokens
from natsfleet.agents.llm.types import LLMRequest, LLMResponse

if TYPE_CHECKING:
    from natsfleet.bus import Bus

log = logging.getLogger(__name__)

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Bookings a late-waking call may make before it goes anyway.
MAX_REBOOKS = 3
#: Lateness below this never counts (timer and scheduling noise).
LATE_MIN_S = 0.005
#: How long `start` waits for the first view of the fleet's health.
SYNC_TIMEOUT_S = 5.0


class CallScope(msgspec.Struct, frozen=True, kw_only=True):
    """Who a call is for: the budgets and tenant limits it counts against."""

    task_id: str | None = None
    task_budget_usd: float | None = None
    run_id: str | None = None
    tenant: str | None = None


def key_token(name: str) -> str:
    """`name` if it is a safe KV key token, else a stable hash of it."""
    if _SAFE.fullmatch(name):
        return name
    return "h" + hashlib.sha256(name.encode()).hexdigest()[:24]


def api_key_id(secret: str) -> str:
    """The identity of an API key in KV and in `natsfleet llm`: never the key itself."""
    return hashlib.sha256(b"natsfleet-governor:" + secret.encode()).hexdigest()[:16]


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def _total_tokens(response: LLMResponse) -> int:
    u = response.usage
    return u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens


class Permit:
    """What `admit` booked for one attempt. Settle it once: `settle` or `interrupted`."""

    def __init__(
        self,
        governor: "Governor",
        *,
        tokens: int,
        estimate_usd: float,
        bookings: list[tuple[KVCell[RateState], RateLimit, float]],
        holds: list[KVCell[BudgetState]],
        hold_id: str,
        waited_s: float,
    ) -> None:
        self._governor = governor
        self.tokens = tokens
        self.estimate_usd = estimate_usd
        self.bookings = bookings
        self.holds = holds
        self.hold_id = hold_id
        self.waited_s = waited_s
        self._settled = False

    def settle(self, response: LLMResponse | None) -> None:
        """The call answered (`response`) or failed before any output (None: no cost)."""
        if response is None:
            self._finish(-self.tokens, None)
        else:
            self._finish(_total_tokens(response) - self.tokens, response.cost_usd)

    def interrupted(self) -> None:
        """A stream ended early after output: charge the estimate, it is an upper bound."""
        self._finish(0, self.estimate_usd)

    def _finish(self, token_delta: int, cost_usd: float | None) -> None:
        if self._settled:
            return
        self._settled = True
        window_s = self._governor.config.governor.window_s
        for cell, limit, slot in self.bookings:
            if limit.tpm and token_delta:
                self._governor.enqueue(cell, settle_tokens(limit, window_s, slot, token_delta))
        for hold in self.holds:
            self._governor.enqueue(hold, budgets.settle(self.hold_id, cost_usd))


class Governor:
    """Fleet-wide limits for one process. `await start()` before use, `aclose()` after."""

    def __init__(
        self,
        config: LLMConfig,
        kv: KeyValue,
        *,
        env: Mapping[str, str] | None = None,
        instance: str | None = None,
    ) -> None:
        self.config = config
        self.kv = kv
        self.instance = instance or uuid.uuid4().hex[:12]
        self.stats = KVStats()
        self.throttled = 0
        self.late = 0  # calls that woke too late for their slot and booked again
        self.wait_s_total = 0.0
        self._cells: dict[str, KVCell[Any]] = {}
        self._queue: asyncio.Queue[tuple[KVCell[Any], Op[Any, Any]]] = asyncio.Queue()
        self._holds = 0
        self._api_key: dict[str, str] = {}  # provider name -> rate key of its API key
        for provider, limit in config.governor.api_keys.items():
            secret = config.providers[provider].api_key(env)
            if secret and limit.limited:
                self._api_key[provider] = f"rate.key.{api_key_id(secret)}"
        self.health = FleetHealth(
            config.cooldown,
            probe_s=config.governor.probe_s,
            instance=self.instance,
            enqueue=lambda name, op: self.enqueue(self._health_cell(name), op),
        )
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start the health watch and the settlement writer; wait for the first view."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="llm-governor")
        governor_metrics.register(self)
        sync = asyncio.ensure_future(self._synced.wait())
        done, _ = await asyncio.wait(
            {sync, self._task}, timeout=SYNC_TIMEOUT_S, return_when="FIRST_COMPLETED"
        )
        if sync not in done:
            sync.cancel()
            if self._task in done:
                self._task.result()  # raises why the governor could not start
            raise GovernorUnavailable("no view of the fleet's health within 5 s")

    async def aclose(self) -> None:
        """Write what is queued (bounded), then stop. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        governor_metrics.unregister(self)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._queue.join()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch_health())
            tg.create_task(self._write())

    async def _watch_health(self) -> None:
        watcher = await self.kv.watch("health.>")
        decoder = msgspec.json.Decoder(HealthState)
        try:
            async for entry in watcher:
                if entry is None:
                    self._synced.set()
                    continue
                name_token = entry.key.removeprefix("health.")
                state: HealthState | None = None
                if entry.value and entry.operation is None:
                    try:
                        state = decoder.decode(entry.value)
                    except msgspec.DecodeError:
                        log.warning("unreadable governor health key %s ignored", entry.key)
                        continue
                    self._health_cell(state.name or name_token).observe(state, entry.revision or 0)
                self.health.seen(state.name if state else name_token, state)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _write(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            results = await asyncio.gather(
                *(cell.apply(op) for cell, op in batch), return_exceptions=True
            )
            for (cell, _), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("governor write to %s failed: %s", cell.key, result)
                self._queue.task_done()

    def enqueue(self, cell: KVCell[Any], op: Op[Any, Any]) -> None:
        """Apply `op` to `cell` in the background (settlements, health)."""
        self._queue.put_nowait((cell, op))

    # -- cells -----------------------------------------------------------------

    def _cell(self, key: str, kind: type[Any]) -> KVCell[Any]:
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = KVCell(self.kv, key, kind, self.stats, kind)
        return cell

    def _health_cell(self, name: str) -> KVCell[HealthState]:
        return self._cell(f"health.{key_token(name)}", HealthState)

    def rate_scopes(self, model: ModelConfig, tenant: str | None) -> list[tuple[str, RateLimit]]:
        """The rate keys a call to `model` counts against, with their limits."""
        gov = self.config.governor
        scopes: list[tuple[str, RateLimit]] = []
        limit = gov.deployments.get(model.name)
        if limit is not None and limit.limited:
            scopes.append((f"rate.dep.{key_token(model.name)}", limit))
        if model.provider in self._api_key:
            scopes.append((self._api_key[model.provider], gov.api_keys[model.provider]))
        if tenant is not None and (t := gov.tenant_limit(tenant)).limited:
            scopes.append((f"rate.tenant.{key_token(tenant)}", t))
        return scopes

    def budget_scopes(self, scope: CallScope, now: float) -> list[tuple[str, str, float, bool]]:
        """(key, label, limit, fixed) of every budget a call counts against."""
        gov = self.config.governor
        day = utc_day(now)
        out: list[tuple[str, str, float, bool]] = []
        if scope.task_id is not None and scope.task_budget_usd is not None:
            out.append(
                (f"budget.task.{key_token(scope.task_id)}", f"task {scope.task_id}",
                 scope.task_budget_usd, True)
            )  # fmt: skip
        if scope.run_id is not None and scope.task_budget_usd is not None:
            # A step's budget is its run's remaining budget when the step was
            # submitted; the first one seen becomes the run's fleet-wide limit.
            out.append(
                (f"budget.run.{key_token(scope.run_id)}", f"workflow run {scope.run_id}",
                 scope.task_budget_usd, True)
            )  # fmt: skip
        if scope.tenant is not None and (limit := gov.tenant_budget_usd(scope.tenant)) is not None:
            out.append(
                (f"budget.tenant.{key_token(scope.tenant)}.{day}", f"tenant {scope.tenant} {day}",
                 limit, False)
            )  # fmt: skip
        if gov.daily_budget_usd is not None:
            out.append((f"budget.fleet.{day}", f"fleet {day}", gov.daily_budget_usd, False))
        return out

    # -- the call path ---------------------------------------------------------

    async def admit(
        self,
        request: LLMRequest,
        model: ModelConfig,
        *,
        deadline: float | None,
        hold_s: float,
        scope: CallScope | None = None,
    ) -> Permit:
        """Wait for a slot under every rate limit, then reserve the estimated cost.

        Args:
            deadline: the task's deadline (`time.monotonic()`), None = unbounded.
            hold_s: how long the call may take once sent (its reservation's life
                is this plus `reservation_grace_s`).

        Raises:
            Throttled: no slot before the deadline (retryable).
            FleetBudgetExceeded: a budget cannot take the estimate (not retryable).
            GovernorUnavailable: the KV bucket is unreachable (retryable).
        """
        scope = scope or CallScope()
        tokens = estimate_tokens(request) + min(request.max_tokens, model.max_output_tokens)
        latest = None if deadline is None else time.time() + (deadline - time.monotonic())
        started = time.monotonic()
        bookings = await self._book(model, scope.tenant, tokens, latest)
        estimate_usd = estimate_cost_usd(request, model)
        self._holds += 1
        holds: list[KVCell[BudgetState]] = []
        permit = Permit(
            self, tokens=tokens, estimate_usd=estimate_usd, bookings=bookings,
            holds=holds, hold_id=f"{self.instance}-{self._holds}", waited_s=0.0,
        )  # fmt: skip
        try:
            slot = max((s for _, _, s in bookings), default=time.time())
            expires_at = slot + hold_s + self.config.governor.reservation_grace_s
            # Budgets first, while the slot approaches: the call goes right at its slot.
            await self._reserve(permit, scope, expires_at)
            permit.bookings = await self._wait_for_slot(
                model, scope.tenant, tokens, latest, bookings
            )
            permit.waited_s = time.monotonic() - started
            self.wait_s_total += permit.waited_s
        except BaseException:
            permit.settle(None)  # give back what was reserved and booked
            raise
        return permit

    async def _reserve(self, permit: Permit, scope: CallScope, expires_at: float) -> None:
        """Hold the estimate in every budget of `scope`; the scopes are independent
        keys, so all at once (one round trip). Raises the first refusal."""
        cells = []
        ops = []
        for key, label, limit, fixed in self.budget_scopes(scope, time.time()):
            cells.append(self._cell(key, BudgetState))
            ops.append(
                budgets.reserve(
                    label, limit, permit.hold_id, permit.estimate_usd, expires_at, fixed=fixed
                )
            )
        outcomes = await asyncio.gather(
            *(cell.apply(op) for cell, op in zip(cells, ops, strict=True)),
            return_exceptions=True,
        )
        permit.holds.extend(c for c, o in zip(cells, outcomes, strict=True) if o is None)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _wait_for_slot(
        self,
        model: ModelConfig,
        tenant: str | None,
        tokens: int,
        latest: float | None,
        bookings: list[tuple[KVCell[RateState], RateLimit, float]],
    ) -> list[tuple[KVCell[RateState], RateLimit, float]]:
        """Sleep until the booked slot. A caller that had to queue for its slot
        and wakes later than half a spacing (at least `LATE_MIN_S`) after it (a
        stalled process) books again rather than go out in a bunch with the
        calls of the next slots; the late slot is left unused. A call that did
        not queue has nobody right behind it: its own delays cannot bunch."""
        window_s = self.config.governor.window_s
        spacings = [window_s / lim.rpm for _, lim, _ in bookings if lim.rpm]
        spacings += [tokens * window_s / lim.tpm for _, lim, _ in bookings if lim.tpm]
        tolerance_s = max(LATE_MIN_S, min(spacings, default=float("inf")) / 2)
        for rebooks in range(MAX_REBOOKS + 1):
            slot = max((s for _, _, s in bookings), default=0.0)
            queued = (wait_s := slot - time.time()) > tolerance_s
            if wait_s > 0:
                await asyncio.sleep(wait_s)  # our own slot: nobody else wakes for it
            late = time.time() - slot > tolerance_s
            if not (queued and late) or rebooks == MAX_REBOOKS:
                return bookings
            self.late += 1
            bookings = await self._book(model, tenant, tokens, latest)
        return bookings

    async def _book(
        self, model: ModelConfig, tenant: str | None, tokens: int, latest: float | None
    ) -> list[tuple[KVCell[RateState], RateLimit, float]]:
        """One slot, the same instant, under every rate scope.

        Each scope's last seen state gives a lower bound of its earliest slot,
        so all are booked from the latest bound, usually in one pass. When a
        scope still only has a later slot, the ones booked before it are
        booked again at that instant (their first slot is left unused:
        capacity lost, never a limit exceeded).
        """
        scopes = self.rate_scopes(model, tenant)
        window_s = self.config.governor.window_s
        at = time.time()
        for key, limit in scopes:
            at = max(at, earliest(self._cell(key, RateState).last_seen, limit))
        slots: dict[str, tuple[KVCell[RateState], RateLimit, float]] = {}
        while True:
            for key, limit in scopes:
                if key in slots and slots[key][2] >= at:
                    continue
                cell = self._cell(key, RateState)
                booked, slot = await cell.apply(book(limit, window_s, tokens, at, latest))
                if not booked:
                    self.throttled += 1
                    raise Throttled(deployment=model.name, scope=key, wait_s=slot - time.time())
                slots[key] = (cell, limit, slot)
                at = max(at, slot)
            if all(s >= at for _, _, s in slots.values()):
                return list(slots.values())

    # -- visibility ------------------------------------------------------------

    def cells(self) -> dict[str, Any]:
        """The last state this process saw of every key it used (metrics)."""
        return {key: cell.last_seen for key, cell in self._cells.items()}


async def open_governor(bus: "Bus", config: LLMConfig) -> Governor:
    """The process's governor on the fleet's GOVERNOR bucket, started.

    The supervisor's provisioning creates the bucket; a process that starts
    first creates it with the same settings. A process that can neither find
    nor create it cannot honour fleet-wide limits and raises
    `GovernorUnavailable` (the agent then exits non-zero).
    """
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError

    from natsfleet.bus.provision import StorageConfig
    from natsfleet.protocols import Bucket

    try:
        kv = await bus.kv(Bucket.GOVERNOR)
    except BucketNotFoundError:
        try:
            kv = await bus.js.create_key_value(
                KeyValueConfig(
                    bucket=bus.subjects.bucket(Bucket.GOVERNOR),
                    history=1,
                    ttl=StorageConfig().governor_ttl_s,
                )
            )
        except Exception as exc:
            raise GovernorUnavailable(f"cannot create the GOVERNOR bucket: {exc}") from exc
    governor = Governor(config, kv)
    await governor.start()
    log.info("LLM governor on: limits, budgets and health are fleet-wide")
    return governor
