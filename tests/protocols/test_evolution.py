"""Additive evolution: old readers accept newer messages, new readers older ones."""

from typing import Any

import msgspec
import pytest

from natsfleet.protocols import (
    Codec,
    DlqReason,
    Heartbeat,
    InFlight,
    ProtocolError,
    RetryPolicy,
    Subjects,
    Timeouts,
    encode,
    new_task_id,
    new_token,
)


class OldHeartbeat(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="agent.hb"):
    """Heartbeat as a first release knew it: before `recent` and `draining`."""

    instance_id: str
    agent: str
    incarnation: str
    seq: int
    load: int
    capacity: int


def test_old_decoder_reads_newer_message_with_extra_fields() -> None:
    new = Heartbeat(
        instance_id="w-1",
        agent="writer",
        incarnation="abc",
        seq=7,
        load=1,
        capacity=4,
        in_flight=(InFlight(task_id="t1", token="00ff", progress=0.5),),
        recent=("0a0b",),
        draining=True,
    )
    old = Codec[OldHeartbeat](OldHeartbeat).decode(encode(new))
    assert (old.instance_id, old.seq, old.load, old.capacity) == ("w-1", 7, 1, 4)


def test_new_decoder_fills_defaults_for_older_message() -> None:
    old = OldHeartbeat(
        instance_id="w-1", agent="writer", incarnation="abc", seq=1, load=0, capacity=2
    )
    new = Codec[Heartbeat](Heartbeat).decode(msgspec.json.encode(old))
    assert new.in_flight == () and new.recent == () and new.draining is False


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00\xffnot json", DlqReason.DECODE_ERROR),
        (b'{"type": "agent.hb"}', DlqReason.DECODE_ERROR),
        (b'{"type": "no.such.type"}', DlqReason.UNKNOWN_TYPE),
        (b'{"instance_id": "x"}', DlqReason.DECODE_ERROR),
        (b"[" * 100_000 + b"]" * 100_000, DlqReason.DECODE_ERROR),
    ],
    ids=["garbage", "missing-fields", "unknown-tag", "no-tag", "deeply-nested"],
)
def test_bad_payloads_are_classified(payload: bytes, reason: DlqReason) -> None:
    with pytest.raises(ProtocolError) as info:
        Codec[Any](Heartbeat).decode(payload)
    assert info.value.reason is reason


def test_retry_policy_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_interval_s=0.1, backoff_coefficient=2.0, maximum_interval_s=0.5)
    exact = RetryPolicy(initial_interval_s=0.1, maximum_interval_s=0.5, jitter=0.0)
    assert [exact.delay_s(n) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    for n in range(1, 8):
        assert 0.0 <= policy.delay_s(n) <= 0.55
    assert policy.allows_another(2) and not policy.allows_another(3)
    assert not RetryPolicy(non_retryable_errors=("Bad",)).is_retryable("Bad", True)


def test_timeouts_merge_over_defaults() -> None:
    defaults = Timeouts(schedule_to_start_s=5, start_to_close_s=60, heartbeat_timeout_s=3)
    merged = Timeouts(start_to_close_s=1).merged_over(defaults)
    assert merged == Timeouts(schedule_to_start_s=5, start_to_close_s=1, heartbeat_timeout_s=3)


def test_ids_sort_by_time_and_tokens_are_64_bit_hex() -> None:
    first, second = new_task_id(now_ms=1_000), new_task_id(now_ms=2_000)
    assert len(first) == 26 and first < second
    token = new_token()
    assert len(token) == 16 and int(token, 16) >= 0


def test_subjects_come_from_one_prefix() -> None:
    subjects = Subjects("acme.fleet")
    assert subjects.submit() == "acme.fleet.submit"
    assert subjects.assign("writer", "w-1") == "acme.fleet.agent.writer.w-1.in.assign"
    assert subjects.result("writer", "w-1") == "acme.fleet.result.writer.w-1"
    assert subjects.output("writer", "w-1", "T1") == "acme.fleet.out.writer.w-1.T1"
    assert subjects.control("status") == "acme.fleet.ctl.status"
    assert subjects.dlq("decode_error") == "acme.fleet.dlq.decode_error"
    assert subjects.reply_inbox("agent", "w-1") == "_INBOX.acme.fleet.agent.w-1"
    with pytest.raises(ValueError, match="not a valid NATS subject"):
        Subjects("bad prefix")
