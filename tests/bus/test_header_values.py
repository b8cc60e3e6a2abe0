"""Header access works whichever header parser nats-py picked."""

from natsfleet.bus.incoming import header, normalized


def test_header_accepts_str_and_list_values() -> None:
    assert header({"Natsfleet-Version": "1"}, "Natsfleet-Version") == "1"
    # nats-py returns lists when the optional fast-mail-parser is installed.
    assert header({"Natsfleet-Version": ["1"]}, "Natsfleet-Version") == "1"
    assert header({"Natsfleet-Version": []}, "Natsfleet-Version") is None
    assert header(None, "Natsfleet-Version") is None
    assert normalized({"A": ["x"], "B": "y"}) == {"A": "x", "B": "y"}
    assert normalized(None) == {}
