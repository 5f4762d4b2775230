"""Per-app IP whitelists and X-Forwarded-For from trusted proxies only (SPEC §3, issue 2 item 6).

The whitelist guards every place an app's *servers* call: the token endpoints
and the Open APIs. X-Forwarded-For is believed only when the TCP peer is one of
``trusted_proxies``, and then read from the right: anything a client wrote to the
left of the last untrusted hop is ignored.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness, World

WHITELIST = ("198.51.100.7", "192.0.2.0/24", "2001:db8::1", "2001:db8:abcd::/48")
PROXIES = "10.9.0.0/16, 2001:db8:ffff::/48"

# (TCP peer, allowed?) for an app with WHITELIST and no proxy in between.
PEERS = [
    ("198.51.100.7", True),
    ("192.0.2.1", True),
    ("192.0.2.255", True),
    ("2001:db8::1", True),
    ("2001:DB8:0:0:0:0:0:1", True),  # the same address, written differently
    ("2001:db8:abcd:12::5", True),
    ("::ffff:198.51.100.7", True),  # IPv4-mapped IPv6: a dual-stack socket's view of an IPv4 peer
    ("::ffff:192.0.2.9", True),
    ("198.51.100.8", False),
    ("192.0.3.1", False),
    ("2001:db8::2", False),
    ("2001:db8:abce::1", False),
    ("::ffff:198.51.100.8", False),
    ("::198.51.100.7", False),  # IPv4-compatible is a different IPv6 address, not a mapping
    ("127.0.0.1", False),
    ("::1", False),
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"trusted_proxies": PROXIES}


async def app_token_code(harness: Harness, world: World, peer: str, headers: Any = None) -> int:
    form = dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential")
    async with harness.client_from(peer) as client:
        response = await client.post("/oauth/credit/token", data=form, headers=headers)
    body = response.json()
    assert response.status_code == (200 if body["code"] == 0 else body["code"] // 100)
    return body["code"]  # type: ignore[no-any-return]


def expected(table: list[tuple[str, bool]]) -> dict[str, int]:
    return {peer: 0 if allowed else 40302 for peer, allowed in table}


async def test_app_token_endpoint_follows_the_whitelist(harness: Harness) -> None:
    world = await harness.world(ip_whitelist=WHITELIST)
    got = {peer: await app_token_code(harness, world, peer) for peer, _ in PEERS}
    assert got == expected(PEERS)


async def test_empty_whitelist_allows_any_address(harness: Harness) -> None:
    world = await harness.world()
    got = {peer: await app_token_code(harness, world, peer) for peer, _ in PEERS}
    assert got == {peer: 0 for peer, _ in PEERS}


async def test_code_and_refresh_endpoints_follow_the_whitelist(harness: Harness) -> None:
    world = await harness.world(ip_whitelist=WHITELIST)
    code = await harness.code(world)  # the browser's address does not matter on connect
    form = dict(app_id=world.app_id, secret=world.secret, code=code, grant_type="authorization_code")
    async with harness.client_from("203.0.113.9") as outsider, harness.client_from("192.0.2.50") as inside:
        denied = await outsider.post("/oauth/access_token", data=form)
        assert (denied.status_code, denied.json()["code"]) == (403, 40302)
        # The refused attempt did not burn the code.
        tokens = (await inside.post("/oauth/access_token", data=form)).json()
        assert tokens["code"] == 0, tokens
        refresh = dict(app_id=world.app_id, refresh_token=tokens["result"]["refresh_token"], grant_type="refresh_code")
        assert (await outsider.post("/oauth/refresh_token", data=refresh)).json()["code"] == 40302
        assert (await inside.post("/oauth/refresh_token", data=refresh)).json()["code"] == 0


async def test_connect_is_not_limited_to_the_whitelist(harness: Harness) -> None:
    """Connect is opened by the customer's browser, not by the app's servers."""
    world = await harness.world(ip_whitelist=WHITELIST)
    async with harness.client_from("203.0.113.9") as browser:
        response = await browser.get("/oauth/connect", params=harness.connect_params(world))
    assert response.status_code == 302 and "code=" in response.headers["location"]


async def test_disallowed_address_learns_nothing_about_the_secret(harness: Harness) -> None:
    """SPEC §9: the whitelist is checked after the secret, so a wrong secret from outside it
    answers like any failed authentication, and only the secret's holder hears of the whitelist."""
    world = await harness.world(ip_whitelist=WHITELIST)
    form = dict(app_id=world.app_id, secret="wrong" * 8, grant_type="client_credential")
    async with harness.client_from("203.0.113.9") as outsider:
        body = (await outsider.post("/oauth/credit/token", data=form)).json()
        assert (body["code"], body["error"]) == (40101, "invalid_client")
        assert world.secret not in str(body)
        right = (await outsider.post("/oauth/credit/token", data={**form, "secret": world.secret})).json()
    assert (right["code"], right["error"]) == (40302, "ip_not_allowed")


async def test_open_api_follows_the_whitelist(harness: Harness) -> None:
    world = await harness.world(ip_whitelist=WHITELIST)
    async with harness.client_from("198.51.100.7") as inside:
        form = dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential")
        app_token = (await inside.post("/oauth/credit/token", data=form)).json()["result"]["access_token"]
    got: dict[str, int] = {}
    for peer, _ in PEERS:
        async with harness.client_from(peer) as client:
            response = await client.get(
                f"/api/spe/customer/{world.customer_id}", headers={"Authorization": f"Bearer {app_token}"}
            )
        got[peer] = response.json()["code"]
        if got[peer]:
            assert response.status_code == 403
    assert got == expected(PEERS)


# ------------------------------------------------------------- X-Forwarded-For

# (TCP peer, X-Forwarded-For, allowed?) with PROXIES trusted.
FORWARDED = [
    ("203.0.113.9", "198.51.100.7", False),  # an untrusted peer cannot claim an address
    ("198.51.100.7", "203.0.113.9", True),  # ... nor lose its own
    ("10.9.0.1", None, False),  # the proxy itself is not whitelisted
    ("10.9.0.1", "198.51.100.7", True),
    ("10.9.3.4", "192.0.2.77", True),
    ("::ffff:10.9.0.1", "198.51.100.7", True),  # a proxy seen through a dual-stack socket
    ("2001:db8:ffff::1", "2001:db8:abcd::9", True),
    ("2001:db8:ffff::1", "2001:db8::2", False),
    ("10.9.0.1", "198.51.100.7, 203.0.113.9", False),  # forged left entry, real client on the right
    ("10.9.0.1", "203.0.113.9, 198.51.100.7", True),
    ("10.9.0.1", "198.51.100.7, 10.9.0.2", True),  # two trusted proxies in a row
    ("10.9.0.1", "203.0.113.9, 198.51.100.7, 10.9.0.2, 2001:db8:ffff::3", True),
    ("10.9.0.1", "198.51.100.7, 203.0.113.9, 10.9.0.2", False),
    ("10.9.0.1", "::ffff:198.51.100.7", True),
    ("10.9.0.1", "198.51.100.7, garbage", False),  # garbage where the proxy wrote: believe nothing
    ("10.9.0.1", "198.51.100.7, ", False),
    ("10.9.0.1", "unknown", False),
    ("10.9.0.1", "198.51.100.7 203.0.113.9", False),
    ("10.9.0.1", "garbage, 198.51.100.7", True),  # garbage the client wrote on the left is harmless
    ("10.9.0.1", "", False),
    ("10.9.0.1", ",,,", False),
    ("10.9.0.1", "198.51.100.7\x00", False),
]


async def test_forwarded_for_only_from_trusted_proxies(harness: Harness) -> None:
    # One world for the whole table: a harness per row would make this file slow.
    world = await harness.world(ip_whitelist=WHITELIST)
    got, want = {}, {}
    for peer, forwarded, allowed in FORWARDED:
        headers = {"X-Forwarded-For": forwarded} if forwarded is not None else None
        got[(peer, forwarded)] = await app_token_code(harness, world, peer, headers)
        want[(peer, forwarded)] = 0 if allowed else 40302
    assert got == want


async def test_repeated_forwarded_for_headers_are_one_list(harness: Harness) -> None:
    """RFC 9110 §5.3: repeated header lines mean one comma-joined list.

    A proxy that adds its own header line (rather than appending to the
    client's) puts the real client in the *last* line; believing the first one
    would let the client pick its own address.
    """
    world = await harness.world(ip_whitelist=WHITELIST)
    forged_first = [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-For", "203.0.113.9")]
    assert await app_token_code(harness, world, "10.9.0.1", forged_first) == 40302
    honest = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7")]
    assert await app_token_code(harness, world, "10.9.0.1", honest) == 0


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ""}])
async def test_forwarded_for_ignored_without_trusted_proxies(harness: Harness) -> None:
    world = await harness.world(ip_whitelist=WHITELIST)
    for peer in ("10.9.0.1", "127.0.0.1", "203.0.113.9"):
        assert await app_token_code(harness, world, peer, {"X-Forwarded-For": "198.51.100.7"}) == 40302
    assert await app_token_code(harness, world, "198.51.100.7", {"X-Forwarded-For": "203.0.113.9"}) == 0


async def test_open_api_reads_the_client_behind_a_trusted_proxy(harness: Harness) -> None:
    world = await harness.world(ip_whitelist=WHITELIST)
    async with harness.client_from("198.51.100.7") as inside:
        form = dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential")
        token = (await inside.post("/oauth/credit/token", data=form)).json()["result"]["access_token"]
    path = f"/api/spe/customer/{world.customer_id}"
    # (the client as the proxy saw it, what the client forged on the left, expected code)
    cases = [("198.51.100.7", "203.0.113.9", 0), ("203.0.113.9", "198.51.100.7", 40302)]
    for client_address, forged, code in cases:
        async with harness.client_from("10.9.0.1") as proxy:
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"{forged}, {client_address}"}
            response = await proxy.get(path, headers=headers)
        assert response.json()["code"] == code, (client_address, response.text)
