"""International host names (SPEC §9; issue 9 finding 9): kept as IDNA A-labels wherever they go
into a header or a URL. host_url and webhook_url are stored that way; the Location of
/oauth/connect, built from the redirect_uri the app sent, is too."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from openplatform.core.redirect_uri import ascii_url
from openplatform.services import validation
from tests.conftest import Harness, run_cli

UNICODE_HOST = "例え.テスト"
A_LABEL_HOST = "xn--r8jz45g.xn--zckzah"


@pytest.mark.parametrize(
    "given, stored",
    [
        (f"https://{UNICODE_HOST}/", f"https://{A_LABEL_HOST}/"),
        (
            f"https://{UNICODE_HOST}:8443/入口?言語=日本",
            f"https://{A_LABEL_HOST}:8443/%E5%85%A5%E5%8F%A3?%E8%A8%80%E8%AA%9E=%E6%97%A5%E6%9C%AC",
        ),
        ("https://BÜCHER.example/a%20b?x=%41", "https://xn--bcher-kva.example/a%20b?x=%41"),
        ("https://app.example.com/Keep/As/Is?x=Y", "https://app.example.com/Keep/As/Is?x=Y"),
    ],
)
def test_urls_are_kept_in_ascii(given: str, stored: str) -> None:
    assert validation.url("host_url", given) == stored
    assert ascii_url(given) == stored and ascii_url(stored) == stored


async def test_apps_are_stored_with_a_label_hosts(harness: Harness) -> None:
    app, _ = await harness.admin.create_app(
        "IDN", f"https://{UNICODE_HOST}/", webhook_url=f"https://{UNICODE_HOST}/hook"
    )
    stored = await harness.admin.db.get_app(app.app_id)
    assert stored is not None
    assert (stored.host_url, stored.webhook_url) == (f"https://{A_LABEL_HOST}/", f"https://{A_LABEL_HOST}/hook")


@pytest.mark.sql  # the CLI, another process (the openplatform command refuses memory://)
async def test_the_cli_stores_them_the_same_way(harness: Harness) -> None:
    done = run_cli(
        harness.platform.settings, "app", "create", "--name", "IDN", "--host-url", f"https://{UNICODE_HOST}/"
    )
    assert f'"host_url": "https://{A_LABEL_HOST}/"' in done.stdout.replace('":"', '": "')


async def test_connect_sends_the_browser_to_the_a_label_host(harness: Harness) -> None:
    world = await harness.world(host_url=f"https://{UNICODE_HOST}/")
    redirect_uri = f"https://{UNICODE_HOST}/コールバック?from=値"
    answer = await harness.connect(world, redirect_uri=redirect_uri)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    target = urlsplit(location)
    assert location.isascii() and (target.netloc, target.path) == (
        A_LABEL_HOST,
        "/%E3%82%B3%E3%83%BC%E3%83%AB%E3%83%90%E3%83%83%E3%82%AF",
    )
    query = parse_qs(target.query)
    assert query["from"] == ["値"] and query["state"] == ["st-123"]
    # The app sends back the redirect_uri it used, in its own spelling: the code is still its.
    exchanged = await harness.exchange(world, query["code"][0], redirect_uri=redirect_uri)
    assert exchanged.json()["code"] == 0, exchanged.text
    # Errors after redirect_uri is trusted go there too, by its A-label host.
    refused = await harness.connect(world, redirect_uri=redirect_uri, scope="no-such-scope")
    assert refused.status_code == 302 and urlsplit(refused.headers["location"]).netloc == A_LABEL_HOST
    # The same host in either spelling is the same host.
    ascii_uri = f"https://{A_LABEL_HOST}/cb"
    assert urlsplit((await harness.connect(world, redirect_uri=ascii_uri)).headers["location"]).netloc == A_LABEL_HOST
