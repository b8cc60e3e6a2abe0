"""The one set of API key rules both gateways use (gateway/keys.py, auth.py,
limits.py): names, secrets, tenants, where keys come from, the 401 and 413
each protocol shapes, and both CLIs refusing to start without a usable key."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from natsfleet.cli.main import cli
from natsfleet.gateway import ApiKeys, GatewayError
from natsfleet.gateway.a2a.app import refusal as a2a_refusal
from natsfleet.gateway.auth import RequireApiKey
from natsfleet.gateway.limits import BodyLimit
from natsfleet.gateway.mcp_app import refusal as mcp_refusal

SECRET = "0123456789abcdef"


def test_a_key_may_carry_a_tenant() -> None:
    keys = ApiKeys.parse(f"alice:acme={SECRET}1, bob={SECRET}2\ncarol:acme={SECRET}3", "t")
    assert [keys.caller(f"{SECRET}{n}") for n in (1, 2, 3)] == ["alice", "bob", "carol"]
    assert (keys.tenant_of("alice"), keys.tenant_of("bob"), keys.tenant_of("carol")) == (
        "acme",
        None,
        "acme",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"a.b={SECRET}", "is not"),  # no dots in a name (the MCP gateway once took them)
        (f"a={SECRET}, b={SECRET}", "same secret"),  # one secret, two callers: ambiguous
        ("a=" + "x" * 257, "16 to 256"),  # no secret over 256 (the A2A gateway once took them)
        (f"a={SECRET}é", "16 to 256"),  # printable ASCII only
        (f"a:acme.x={SECRET}", "tenant of API key"),  # a tenant is a fleet id
        (f"a:={SECRET}", "tenant of API key"),
        ("", "no API key"),
    ],
)
def test_keys_that_break_a_rule_are_refused(text: str, problem: str) -> None:
    with pytest.raises(GatewayError, match=problem):
        ApiKeys.parse(text, "t")


def test_a_tenant_for_no_key_is_refused() -> None:
    with pytest.raises(GatewayError, match="which is no key"):
        ApiKeys({"a": SECRET}, {"b": "acme"})


def test_the_file_when_given_else_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"# ops\nfromfile={SECRET}\n")
    keys = ApiKeys.load(f"fromenv={SECRET}x", path)
    assert (keys.caller(SECRET), keys.caller(f"{SECRET}x")) == ("fromfile", None)
    assert ApiKeys.load(f"fromenv={SECRET}x", None).caller(f"{SECRET}x") == "fromenv"
    with pytest.raises(GatewayError, match="cannot read keys file"):
        ApiKeys.load(None, tmp_path / "missing.txt")


@pytest.mark.parametrize("protocol", ["mcp", "a2a"])
def test_both_gateways_refuse_to_start_on_the_same_bad_keys(protocol: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["gateway", protocol, "--port", "0", "--nats", "nats://127.0.0.1:1"]
    for env, extra, problem in (
        ({"NATSFLEET_GATEWAY_KEYS": ""}, [], "no API key"),
        ({"NATSFLEET_GATEWAY_KEYS": "a.b=0123456789abcdef"}, [], "is not"),
        ({}, ["--keys-file", str(tmp_path / "none.txt")], "cannot read keys file"),
    ):
        result = runner.invoke(cli, [*base, *extra], env=env)
        assert result.exit_code == 2, (protocol, result.output)
        assert problem in result.output, (protocol, result.output)
        assert "0123456789abcdef" not in result.output  # a secret is never echoed


async def _whoami(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"user": request.user.display_name, "bytes": len(body)})


@pytest.mark.parametrize(
    ("refusal", "field"), [(mcp_refusal, "error"), (a2a_refusal, "error")], ids=["mcp", "a2a"]
)
def test_the_door_and_the_body_limit_shaped_by_each_protocol(refusal: object, field: str) -> None:
    keys = ApiKeys.parse(f"alice:acme={SECRET}", "t")
    app = Starlette(routes=[Route("/", _whoami, methods=["POST"])])
    door = RequireApiKey(BodyLimit(app, 100, refusal), keys, refusal)  # type: ignore[arg-type]
    with TestClient(door) as http:
        for headers in ({}, {"X-API-Key": "wrong-0123456789"}):
            refused = http.post("/", content=b"{}", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert field in refused.json()
        ok = http.post("/", content=b"x" * 100, headers={"Authorization": f"Bearer {SECRET}"})
        assert ok.json() == {"user": "alice", "bytes": 100}
        big = http.post("/", content=b"x" * 101, headers={"X-API-Key": SECRET})
        assert big.status_code == 413 and field in big.json()

        def chunks() -> object:
            yield b"x" * 60
            yield b"x" * 60

        chunked = http.post("/", content=chunks(), headers={"X-API-Key": SECRET})  # type: ignore[arg-type]
        assert chunked.status_code == 413
        # The same shape as the Content-Length refusal, not the app's own answer.
        assert chunked.json() == big.json()
