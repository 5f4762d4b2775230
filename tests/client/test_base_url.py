"""A base URL the SDK cannot use is a configuration error when the client is made (issue 13 item 7).

Before, ``AppClient(app_id, secret, "localhost:8000")`` (no ``http://``) was accepted and the first
call failed as a network error, "temporarily unavailable"; now the constructor refuses it.
"""

from __future__ import annotations

import pytest

from openplatform_client import AppClient, AsyncAppClient, ValidationError

SECRET = "s" * 64


@pytest.mark.parametrize("client_class", [AppClient, AsyncAppClient])
@pytest.mark.parametrize(
    "base_url",
    ["localhost:8000", "127.0.0.1:8000", "open.example.com", "ftp://open.example.com", "https://",
     "https://open.example.com/?x=1", "https://open.example.com/#top", "http://[::1"],
)  # fmt: skip
def test_an_unusable_base_url_is_refused_at_construction(client_class: type[AppClient], base_url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        client_class("a" * 32, SECRET, base_url)
    assert (refused.value.code, refused.value.field) == (40001, "base_url")
    assert "absolute http(s) URL, such as https://open.example.com" in refused.value.msg
    assert repr(base_url) in refused.value.msg


@pytest.mark.parametrize(
    ("given", "kept"),
    [("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
     ("https://open.example.com/openplatform", "https://open.example.com/openplatform")],
)  # fmt: skip
def test_a_good_base_url_is_kept_without_its_trailing_slash(given: str, kept: str) -> None:
    with AppClient("a" * 32, SECRET, given) as client:
        assert client.base_url == kept
