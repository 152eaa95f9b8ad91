"""The fast address path accepts only what email-validator accepts, normalised the same."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given
from hypothesis import strategies as st

from herald.domain.addresses import InvalidAddress, _fast_path, parse_email_address

atom_chars = st.sampled_from([*"abcXYZ019!#$%&'*+/=?^_`{|}~-.é@ ", ".."])
label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
tld = st.sampled_from(["com", "org", "io", "c", "test", "local", "xn--p1ai", "123", "co"])


@given(
    local=st.lists(atom_chars, min_size=1, max_size=20).map("".join),
    labels=st.lists(label, min_size=1, max_size=3),
    top=tld,
    upper=st.booleans(),
)
@example(local="a", labels=["ab--cd"], top="com", upper=False)
@example(local="a", labels=["x"], top="localhost", upper=False)
def test_fast_path_agrees_with_email_validator(
    local: str, labels: list[str], top: str, upper: bool
) -> None:
    address = f"{local}@{'.'.join([*labels, top])}"
    if upper:
        address = address.upper()
    fast = _fast_path(address)
    if fast is None:
        return  # email-validator decides; nothing to compare
    result = validate_email(address, check_deliverability=False)
    assert fast.addr == result.normalized


@given(st.text(max_size=60))
def test_anything_is_either_an_address_or_a_clear_error(value: str) -> None:
    try:
        parsed = parse_email_address(value)
    except InvalidAddress as exc:
        message = str(exc)
    else:
        message = ""
        assert "@" in parsed.addr
        assert "\n" not in parsed.addr
        assert "\r" not in parsed.name
    assert message or "@" in value


@pytest.mark.parametrize(
    ("value", "name", "addr"),
    [
        ("alice@example.org", "", "alice@example.org"),
        ("Alice@EXAMPLE.org", "", "Alice@example.org"),
        ("Alice <alice@example.org>", "Alice", "alice@example.org"),
        ("Zoë Ångström <zoe@example.org>", "Zoë Ångström", "zoe@example.org"),
        ('"Doe, Jane" <jane@example.org>', "Doe, Jane", "jane@example.org"),
        ("<bare@example.org>", "", "bare@example.org"),
        ("a@xn--p1ai.com", "", "a@xn--p1ai.com"),
    ],
)
def test_accepted_forms(value: str, name: str, addr: str) -> None:
    assert parse_email_address(value) == (name, addr)


@pytest.mark.parametrize(
    "value",
    [
        "no-at-sign",
        "a@b",
        "a@localhost",
        "a@x.test",
        "a..b@example.org",
        "Name <a@b@c.org>",
        "Evil\r\nBcc: x@y.org <a@example.org>",
        "a@example.org\nBcc: x@y.org",
    ],
)
def test_refused_forms(value: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_email_address(value)
    with pytest.raises((EmailNotValidError, InvalidAddress)):
        validate_email(value, check_deliverability=False, allow_display_name=True)
