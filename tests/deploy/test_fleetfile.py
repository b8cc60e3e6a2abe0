"""Fleet file validation: every problem names its key and says what is wrong."""

from pathlib import Path

import pytest

from natsfleet.deploy import FleetFileError, load_fleet, parse_fleet, plan
from natsfleet.deploy.plan import supervisor_config_json
from tests.deploy.helpers import AGENT_ENV, write_fleet


def error_of(text: str) -> FleetFileError:
    with pytest.raises(FleetFileError) as info:
        parse_fleet(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[nats]\nurl = 'nats://h:4222'\nbogus = 1\n", "nats.bogus", "unknown key 'bogus'"),
        ("[[agents]]\ninstances = 2\n", "agents[0].agent", "missing required key"),
        ("[[agents]]\nagent = 'echo'\ninstances = -1\n", "agents[0].instances", ">= 0"),
        (
            "[[agents]]\nagent = 'echo'\ncapacity = 'four'\n",
            "agents[0].capacity",
            "expected `int`, got `str`",
        ),
        ("[[agents]]\nagent = 'echo'\ncapacity = 0\n", "agents[0].capacity", ">= 1"),
        ("[supervisor]\nreplicas = 0\n", "supervisor.replicas", ">= 1"),
        (
            "[supervisor.timeouts]\nstart_to_close_s = -5\n",
            "supervisor.timeouts.start_to_close_s",
            "> 0",
        ),
        ("[supervisor.retry]\nmax_attempts = 3\n", "supervisor.retry.max_attempts", "known"),
        ("llm = 'gpt'\n", "llm", "must be a table"),
        ("[nats]\nurl = 'localhost'\n", "nats.url", "not a URL"),
        ("[nats]\nurl = 'nats://10.0.0.1:4222'\nembedded = true\n", "nats.embedded", "loopback"),
        ("[nats]\nprefix = 'bad prefix'\n", "nats.prefix", "not a valid NATS subject"),
        ("[[agents]]\nagent = 'x:Y'\nname = 'Bad_Name'\n", "agents[0].name", "lowercase"),
        (
            "[[agents]]\nagent = 'a:Echo'\n[[agents]]\nagent = 'b:Echo'\n",
            "agents[1].name",
            "already used by agents[0]",
        ),
        ("[[agents]]\nagent = 'x:Y'\nenv = { N = 1 }\n", "agents[0].env[...]", "`str`"),
        ("[up]\nbackoff_initial_s = 5\nbackoff_max_s = 1\n", "up.backoff_max_s", ">="),
        ("this is = not toml =", "", "not valid TOML"),
    ],
)
def test_bad_values_are_named_by_key(text: str, key: str, fragment: str) -> None:
    error = error_of(text)
    assert error.key == key, str(error)
    assert fragment in error.problem, str(error)


def test_unknown_key_lists_the_known_ones() -> None:
    error = error_of("[up]\nmax_restart = 3\n")
    assert "known keys: max_restarts, within_s" in error.problem


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            "no_such_agent_name",
            "unknown agent 'no_such_agent_name' (known names: assistant, booker, echo, editor, "
            "researcher, writer)",
        ),
        ("tests.no_such_module:Agent", "cannot import module 'tests.no_such_module'"),
        ("tests.fleet_agents:NoSuchAgent", "has no attribute 'NoSuchAgent'"),
        ("tests.fleet_agents:FAST", "is not a class"),
    ],
)
def test_agent_specs_must_resolve(tmp_path: Path, spec: str, fragment: str) -> None:
    path = write_fleet(tmp_path, f"[[agents]]\nagent = '{spec}'\n{AGENT_ENV}\n")
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    assert info.value.key == "agents[0].agent"
    assert fragment in info.value.problem
    assert str(path) in str(info.value)


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match="cannot read"):
        load_fleet(tmp_path / "nope.toml")


def test_example_fleet_loads_and_plans() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "fleet.toml"
    fleet_file = load_fleet(example)
    names = [spec.name for spec in plan(fleet_file)]
    assert names == ["supervisor-1", "supervisor-2", "echo-1", "echo-2", "echo-big-1"]
    assert fleet_file.fleet.llm == {"default_model": "offline"}
    agent_args = plan(fleet_file)[2].args
    assert agent_args[:5] == ("agent", "run", "echo", "--instance", "echo-1")
    assert "--grace-s" in agent_args


def test_supervisor_section_becomes_config_json() -> None:
    fleet = parse_fleet(
        "[supervisor]\nassign_timeout_s = 1.5\nstream_replicas = 3\n"
        "[supervisor.timeouts]\nheartbeat_timeout_s = 4\n"
        "[supervisor.retry]\nmaximum_attempts = 5\n"
    )
    assert supervisor_config_json(fleet.supervisor) == (
        '{"assign_timeout_s":1.5,"retry":{"maximum_attempts":5},'
        '"storage":{"replicas":3},"timeouts":{"heartbeat_timeout_s":4.0}}'
    )


def test_output_retention_reaches_the_supervisors_storage_settings() -> None:
    import json

    import msgspec

    from natsfleet.supervisor import SupervisorConfig

    fleet = parse_fleet("[supervisor]\noutput_max_age_s = 3600\noutput_max_bytes = 8388608\n")
    config = json.loads(supervisor_config_json(fleet.supervisor))
    assert config == {"storage": {"output_max_age_s": 3600.0, "output_max_bytes": 8388608}}
    storage = msgspec.convert(config, SupervisorConfig).storage
    assert (storage.output_max_age_s, storage.output_max_bytes) == (3600.0, 8388608)
