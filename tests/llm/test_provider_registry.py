"""The provider registry: every kind has a constructor, an unknown kind fails at start."""

import subprocess
import sys
from pathlib import Path

import pytest

from natsfleet.agents.llm import (
    ConfigError,
    LLMConfig,
    ProviderConfig,
    ProviderKind,
    UnknownProviderKindError,
    config_from_mapping,
    load_config,
)
from natsfleet.agents.llm.providers import PROVIDERS, build_providers
from natsfleet.process.server import NatsServer
from tests.procs import REPO_ROOT, AgentProcs


def test_every_provider_kind_has_a_constructor() -> None:
    assert set(PROVIDERS) == set(ProviderKind)


def test_a_misspelled_kind_names_the_provider_and_the_known_kinds() -> None:
    with pytest.raises(UnknownProviderKindError) as info:
        config_from_mapping({"providers": {"claude": {"kind": "antropic"}}})
    err = info.value
    assert isinstance(err, ConfigError)  # callers catching ConfigError still do
    assert (err.provider, err.kind) == ("claude", "antropic")
    assert err.known == ("anthropic", "offline", "openai")
    assert "'antropic'" in str(err) and "anthropic, offline, openai" in str(err)


def test_a_fleet_file_with_a_misspelled_kind_fails_to_load(tmp_path: Path) -> None:
    fleet = tmp_path / "natsfleet.toml"
    fleet.write_text('[llm.providers.claude]\nkind = "antropic"\n')
    with pytest.raises(UnknownProviderKindError, match="known kinds: anthropic"):
        load_config(fleet, table="llm")


def test_a_kind_without_a_constructor_is_a_typed_error() -> None:
    # Validation refuses unknown kinds; this is the guard behind it for a kind
    # added to ProviderKind but not to PROVIDERS (a str is not a ProviderKind).
    config = LLMConfig(providers={"x": ProviderConfig(kind="bogus")})  # type: ignore[arg-type]
    with pytest.raises(UnknownProviderKindError):
        build_providers(config, env={})


def test_providers_without_keys_import_no_sdk() -> None:
    code = (
        "import sys\n"
        "from natsfleet.agents.llm_binding import default_llm_config\n"
        "from natsfleet.agents.llm.providers import build_providers\n"
        "providers, _ = build_providers(default_llm_config(), env={})\n"
        "print(sorted(providers), 'anthropic' in sys.modules, 'openai' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.split() == ["['offline']", "False", "False"]


async def test_an_agent_with_a_misspelled_kind_exits_non_zero_at_start(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    fleet = tmp_path / "natsfleet.toml"
    fleet.write_text('[llm.providers.claude]\nkind = "antropic"\n')
    async with AgentProcs(nats_server.url, "regkind", tmp_path / "logs") as procs:
        proc = await procs.start(
            "tests.fleet_agents:EchoAgent", env={"NATSFLEET_FLEET_FILE": str(fleet)}
        )
        assert await proc.wait(timeout_s=30) != 0
        assert "unknown kind 'antropic'" in proc.log()
