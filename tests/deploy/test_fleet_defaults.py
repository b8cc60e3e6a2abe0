"""The fleet file's `[supervisor.timeouts]` and `[supervisor.retry]` are the wire's
`Timeouts` and `RetryPolicy`, key for key and limit for limit (not a copy of them)."""

import msgspec
import pytest

from natsfleet.deploy import FleetFileError, parse_fleet
from natsfleet.deploy.fleetfile import RetryDefaults, TimeoutDefaults
from natsfleet.deploy.plan import supervisor_config_json
from natsfleet.protocols import RetryPolicy, Timeouts


def _names(struct: type[msgspec.Struct]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(struct)]


def test_the_tables_have_the_protocol_structs_keys() -> None:
    assert _names(TimeoutDefaults) == _names(Timeouts)
    assert _names(RetryDefaults) == _names(RetryPolicy)


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        # The wire's limits (protocols/limits.py), which the supervisor would refuse at start.
        ("[supervisor.retry]\nbackoff_coefficient = 1000\n", "backoff_coefficient", "<= 100"),
        ("[supervisor.retry]\njitter = 2\n", "jitter", "<= 1"),
        (f"[supervisor.retry]\nnon_retryable_errors = ['{'x' * 300}']\n", "non_retryable_errors[0]",
         "length <= 256"),
        ("[supervisor.timeouts]\nschedule_to_close_s = 1e12\n", "schedule_to_close_s", "<="),
        # The fleet's own rule on top: a default timeout of 0 would time every task out.
        ("[supervisor.timeouts]\nheartbeat_timeout_s = 0\n", "heartbeat_timeout_s", "> 0"),
    ],
)  # fmt: skip
def test_the_wire_limits_apply_to_the_fleet_file(text: str, key: str, fragment: str) -> None:
    with pytest.raises(FleetFileError) as info:
        parse_fleet(text)
    assert info.value.key.endswith(key), str(info.value)
    assert fragment in info.value.problem, str(info.value)


def test_only_the_keys_set_are_passed_and_every_protocol_key_is_accepted() -> None:
    fleet = parse_fleet("[supervisor.retry]\njitter = 0.25\nmaximum_attempts = 3\n")
    assert supervisor_config_json(fleet.supervisor) == (
        '{"retry":{"jitter":0.25,"maximum_attempts":3}}'
    )
    assert supervisor_config_json(parse_fleet("").supervisor) == "{}"
