"""Whitelist entries written as IPv4-mapped IPv6 match IPv4 callers; bad settings fail at load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from openplatform.config import Settings
from openplatform.core.ip_policy import ip_allowed, parse_whitelist_entry


@pytest.mark.parametrize(
    ("entry", "normalised"),
    [
        ("::ffff:1.2.3.4", "1.2.3.4/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("192.0.2.0/24", "192.0.2.0/24"),
    ],
)
def test_mapped_entries_become_ipv4(entry: str, normalised: str) -> None:
    assert str(parse_whitelist_entry(entry)) == normalised


@pytest.mark.parametrize("caller", ["1.2.3.4", "::ffff:1.2.3.4"])
def test_mapped_entry_matches_ipv4_caller(caller: str) -> None:
    assert ip_allowed(caller, ("::ffff:1.2.3.4",))
    assert not ip_allowed(caller, ("::ffff:1.2.3.5",))


@pytest.mark.parametrize("spec", ["ip=abc", "nope=1/60", "ip=5/x"])
def test_bad_rate_limits_are_refused_when_settings_load(spec: str) -> None:
    with pytest.raises(ValidationError):
        Settings(rate_limits=spec)


@pytest.mark.parametrize("spec", ["off", "default", "ip=5/60,bad_secret=3/300"])
def test_good_rate_limits_load(spec: str) -> None:
    assert Settings(rate_limits=spec).rate_limits == spec
