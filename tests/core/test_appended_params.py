"""Where the server appends parameters to a URL it was given (a code to a redirect_uri, the signed
launch to a host_url), the URL's own pairs of those names are left out: the app gets each once."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from openplatform.core.redirect_uri import without_params
from openplatform.core.signing import sign_launch, verify_launch
from openplatform.services.console import launch_url


def test_without_params_keeps_the_other_pairs_as_they_are() -> None:
    names = {"code", "state"}
    assert without_params("", names) == ""
    assert without_params("x=1&code=a&y=a%20b&co%64e=b&state&codex=2&empty=", names) == "x=1&y=a%20b&codex=2&empty="
    assert without_params("code=only", names) == ""


def test_a_launch_never_doubles_a_signed_parameter() -> None:
    params = sign_launch("s" * 32, "app1", "spe_1", "cus_1")
    url = launch_url("https://app.example.com/home?signature=forged&x=1&customer_id=cus_other", params)
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert query["x"] == ["1"]
    assert all(query[name] == [value] for name, value in params.items()), query
    assert verify_launch("s" * 32, {name: values[0] for name, values in query.items()})
