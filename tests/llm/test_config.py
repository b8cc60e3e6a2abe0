"""The typed model config, loaded from TOML (standalone or a fleet file's [llm] table)."""

from pathlib import Path

import pytest

from natsfleet.agents.llm import ConfigError, Router, Tier, TokenUsage, load_config

FLEET = """
[fleet]
name = "demo"

[llm.providers.anthropic]
kind = "anthropic"

[llm.providers.local]
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
require_key = false

[[llm.models]]
name = "haiku"
provider = "anthropic"
model = "claude-haiku-4-5"
tier = "small"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 5.0
context_window_tokens = 200000

[[llm.models]]
name = "llama"
provider = "local"
model = "llama3.1:8b"
tier = "small"
context_window_tokens = 8192

[llm.routing.weights]
cost = 2.0

[llm.cache]
ttl_s = 600
"""


def test_load_fleet_file_table(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET)
    config = load_config(path, table="llm")
    assert [m.name for m in config.models] == ["haiku", "llama"]
    assert config.model("haiku").tier is Tier.SMALL
    assert config.routing.weights.cost == 2.0 and config.cache.ttl_s == 600
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=200_000, cache_read_tokens=1_000_000)
    assert config.model("haiku").cost_usd(usage) == pytest.approx(1.0 + 1.0 + 1.0)


async def test_keys_come_from_the_environment_only(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET)
    config = load_config(path, table="llm")
    # No ANTHROPIC_API_KEY: haiku is dropped; the keyless local server stays.
    async with Router.from_config(config, env={}) as router:
        assert [m.name for m in router.models] == ["llama"]
    async with Router.from_config(config, env={"ANTHROPIC_API_KEY": "k"}) as router:
        assert [m.name for m in router.models] == ["haiku", "llama"]


@pytest.mark.parametrize(
    "bad",
    [
        '[[models]]\nname="x"\nprovider="nope"\nmodel="x"\ntier="small"\n',
        '[providers.p]\nkind="openai"\n[[models]]\nname="x"\nprovider="p"\nmodel="x"\ntier="huge"\n',
        '[providers.p]\nkind="openai"\nsecret="no"\n',
        "[routing.fallbacks]\nx = ['y']\n",
        "not toml = = =",
    ],
)
def test_bad_configs_are_typed_errors(bad: str, tmp_path: Path) -> None:
    path = tmp_path / "llm.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError):
        load_config(path)
