"""One `module:attr` resolver (process.specs) behind every loader, one entry-point group name."""

import pytest

import natsfleet.agents.loader as agents_loader
import natsfleet.deploy.resolve as deploy_resolve
from natsfleet.agents.builtin import EchoAgent
from natsfleet.process.specs import (
    AGENT_ENTRY_POINT_GROUP,
    ImportSpecError,
    resolve_spec,
    split_spec,
)


def test_resolves_a_dotted_attribute() -> None:
    assert resolve_spec("natsfleet.agents.builtin:EchoAgent") is EchoAgent
    assert resolve_spec("natsfleet.process.specs:ImportSpecError.__name__") == "ImportSpecError"


@pytest.mark.parametrize("spec", ["no_colon", ":Class", "module:", ""])
def test_a_malformed_spec_is_a_typed_error(spec: str) -> None:
    with pytest.raises(ImportSpecError, match=r"package\.module:attribute"):
        split_spec(spec)
    with pytest.raises(ImportSpecError):
        resolve_spec(spec)


def test_a_missing_module_carries_its_cause() -> None:
    with pytest.raises(ImportSpecError, match=r"cannot import .tests\.no_such_module.") as info:
        resolve_spec("tests.no_such_module:Thing")
    assert isinstance(info.value.cause, ModuleNotFoundError)
    assert info.value.missing is None


def test_a_missing_attribute_names_it() -> None:
    with pytest.raises(ImportSpecError) as info:
        resolve_spec("natsfleet.agents.builtin:EchoAgent.no_such_attr")
    assert (info.value.module, info.value.missing) == ("natsfleet.agents.builtin", "no_such_attr")
    assert info.value.cause is None


def test_one_entry_point_group_name() -> None:
    assert agents_loader.ENTRY_POINT_GROUP is AGENT_ENTRY_POINT_GROUP
    assert deploy_resolve.ENTRY_POINT_GROUP is AGENT_ENTRY_POINT_GROUP
    assert AGENT_ENTRY_POINT_GROUP == "natsfleet.agents"


def test_the_researchers_search_provider_spec_goes_through_the_resolver() -> None:
    from natsfleet.agents.builtins.researcher import make_search_provider
    from natsfleet.agents.tools.research.web import WebSearchProvider

    spec = "natsfleet.agents.tools.research.web:WebSearchProvider"
    assert isinstance(make_search_provider(spec), WebSearchProvider)
    with pytest.raises(ImportSpecError, match="no_such_provider"):
        make_search_provider("natsfleet.agents.tools.research.web:no_such_provider")
