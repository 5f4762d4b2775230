"""A Token reads as its bearer value where a string is expected, and never shows it in repr()."""

from __future__ import annotations

import httpx

from openplatform.client.models import Token


def test_token_formats_as_its_bearer_value_but_repr_hides_it() -> None:
    token = Token(access_token="abc123", expires_in=7200, expires_at=1e12, customer_id="cus_1")
    assert str(token) == "abc123"
    assert f"Bearer {token}" == "Bearer abc123"
    request = httpx.Request("GET", "http://testserver/api", params={"access_token": token})
    assert request.url.params["access_token"] == "abc123"
    assert "abc123" not in repr(token)
