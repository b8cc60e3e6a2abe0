"""Properties of the edge rule (protocols/limits.py): decoding and the explicit
checks agree, whatever passes is safe as a subject token and a KV key, every
id natsfleet makes passes, and every number that passes is safe to compute with."""

import math
import random
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.js.kv import VALID_KEY_RE

from natsfleet.agents.runtime import default_instance_id
from natsfleet.protocols import (
    ID_MAX_CHARS,
    Codec,
    InvalidValue,
    ProtocolError,
    RetryPolicy,
    Subjects,
    Submit,
    Timeouts,
    check_id,
    check_key,
    check_name,
    check_struct,
    is_id,
    is_name,
    new_incarnation,
    new_task_id,
    new_token,
    to_raw,
)
from natsfleet.protocols.limits import (
    KEY_MAX_CHARS,
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_EPOCH_MS,
)
from natsfleet.supervisor.config import DEFAULT_TIMEOUTS
from natsfleet.supervisor.transitions import new_record
from natsfleet.supervisor.workflows.state import step_task_id

SUBMIT = Codec[Submit](Submit)
# What nats-server takes as one token of a published subject.
_SUBJECT_TOKEN = re.compile(r"[^\s.*>\x00-\x1f\x7f]+")

# Strings near the rule: id characters, the ones that break subjects, and any text.
_near = st.text(
    st.sampled_from("aZ09_-.*> \t\n\r\x00\x01\x7f/=é"), min_size=0, max_size=ID_MAX_CHARS + 3
)
_long = st.integers(ID_MAX_CHARS - 2, ID_MAX_CHARS + 2).map(lambda n: "a" * n)
STRINGS = st.one_of(st.text(max_size=40), _near, _long)
_valid_ids = st.text(st.sampled_from("ABCXYZabcxyz0189_-"), min_size=1, max_size=ID_MAX_CHARS)


def _decodes(**fields: Any) -> bool:
    body = {"type": "task.submit", "task_id": "t", "skill": "s", "input": {}, **fields}
    try:
        SUBMIT.decode(msgspec.json.encode(body))
    except ProtocolError:
        return False
    return True


def _raises(check: Any, value: str) -> bool:
    try:
        check(value)
    except InvalidValue:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(STRINGS)
def test_decoding_and_the_explicit_checks_apply_one_rule(value: str) -> None:
    assert _decodes(task_id=value) == is_id(value) == (not _raises(check_id, value))
    assert _decodes(parent_id=value) == is_id(value)
    assert _decodes(workflow=value, skill=None) == is_id(value)
    assert _decodes(skill=value) == is_name(value) == (not _raises(check_name, value))
    assert _decodes(idempotency_key=value) == (not _raises(check_key, value))


@settings(max_examples=400, deadline=None)
@given(STRINGS)
def test_an_id_is_always_one_subject_token_and_a_kv_key(value: str) -> None:
    if is_id(value):
        assert _SUBJECT_TOKEN.fullmatch(value), value
        assert VALID_KEY_RE.match(value) and len(value.encode()) <= ID_MAX_CHARS
    if is_name(value):  # a skill may hold dots: a KV key, never a subject token
        assert VALID_KEY_RE.match(value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=KEY_MAX_CHARS + 10))
def test_keys_are_bounded_and_free_of_control_characters(value: str) -> None:
    # C0 controls and DEL only: a key is hashed, never sent as a subject or header.
    controls = any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    assert (not _raises(check_key, value)) == (0 < len(value) <= KEY_MAX_CHARS and not controls)


def test_every_id_natsfleet_makes_passes() -> None:
    for _ in range(1000):
        check_id(new_task_id())
        check_id(new_token())
        check_id(new_incarnation())
    check_id(default_instance_id("a" * ID_MAX_CHARS))
    check_id(default_instance_id("echo"))


@settings(max_examples=300, deadline=None)
@given(
    _valid_ids,
    st.from_regex(r"[a-z][a-z0-9_]{0,127}", fullmatch=True),
    st.integers(0, 10**9),
)
def test_step_task_ids_are_ids_and_deterministic(run_id: str, step: str, n: int) -> None:
    task_id = step_task_id(run_id, step, n)
    assert is_id(task_id), task_id
    assert task_id == step_task_id(run_id, step, n)
    if len(f"{run_id}-{step}-{n}") <= ID_MAX_CHARS:
        assert task_id == f"{run_id}-{step}-{n}"
    else:  # cut and digested: still distinct from its neighbours
        assert task_id != step_task_id(run_id, step, n + 1)


_seconds = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1.0, 0.0, MAX_DURATION_S, MAX_DURATION_S * 1.0001]),
)


@settings(max_examples=300, deadline=None)
@given(
    _seconds, st.integers(-(2**63), 2**63 - 1), st.sampled_from(list(Timeouts.__struct_fields__))
)
def test_numbers_that_pass_are_safe_to_compute_with(
    seconds: float, submitted_ms: int, field: str
) -> None:
    body = {"timeouts": {field: seconds}, "submitted_ms": submitted_ms}
    ok = _decodes(**body)
    assert ok == (0 <= seconds <= MAX_DURATION_S and 0 <= submitted_ms <= MAX_EPOCH_MS)
    if ok:
        submit = SUBMIT.decode(
            msgspec.json.encode({"type": "task.submit", "task_id": "t", "input": {}, **body})
        )
        record = new_record(submit, DEFAULT_TIMEOUTS, RetryPolicy(), now_ms=1_700_000_000_000)
        msgspec.json.encode(record)  # every deadline is an encodable integer


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0, MAX_DURATION_S),
    st.floats(1, 100),
    st.floats(0, MAX_DURATION_S),
    st.floats(0, 1),
    st.integers(1, MAX_COUNT),
)
def test_every_retry_delay_is_finite_and_capped(
    initial: float, coefficient: float, maximum: float, jitter: float, failed: int
) -> None:
    policy = RetryPolicy(
        initial_interval_s=initial,
        backoff_coefficient=coefficient,
        maximum_interval_s=maximum,
        jitter=jitter,
    )
    assert check_struct(policy) is policy
    delay = policy.delay_s(failed, random.Random(0))
    assert math.isfinite(delay) and 0 <= delay <= maximum * (1 + jitter) + 1e-9


@pytest.mark.parametrize(
    "fields",
    [
        {"retry": {"initial_interval_s": 1e308}},
        {"retry": {"backoff_coefficient": 0.5}},
        {"retry": {"maximum_attempts": -1}},
        {"retry": {"jitter": 2.0}},
        {"retry": {"non_retryable_errors": ["x" * 1000]}},
        {"priority": 2**40},
        {"priority": -1},
        {"budget_usd": float("1e9")},
        {"budget_usd": -0.01},
        {"client": "c" * 1000},
    ],
)
def test_numbers_out_of_range_do_not_decode(fields: dict[str, Any]) -> None:
    assert not _decodes(**fields)


def test_check_struct_names_the_field() -> None:
    bad = Submit(task_id="a b", skill="echo", input=to_raw({}))
    with pytest.raises(InvalidValue, match=r"\$\.task_id"):
        check_struct(bad, "submit")
    with pytest.raises(InvalidValue, match="characters"):
        check_id("x" * 100_000, "task id")


@pytest.mark.parametrize("prefix", ["fleet\n", "p" * 129, "a..b", "a.*", ""])
def test_a_prefix_that_would_break_subjects_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="not a valid NATS subject"):
        Subjects(prefix)


def test_the_longest_subject_fits_a_protocol_line() -> None:
    """Longest prefix and ids: a publish's control line stays far below 4 KiB."""
    subjects = Subjects(".".join(["p" * 63, "q" * 64]))
    longest = "x" * ID_MAX_CHARS
    line = (
        f"HPUB {subjects.output(longest, longest, longest)} "
        f"{subjects.reply_inbox(longest, longest)}.{longest} 999999 99999999\r\n"
    )
    assert len(line.encode()) < 2048
